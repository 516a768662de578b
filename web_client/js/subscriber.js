// The subscribe connection: the server offers (one m-line per remote track), we answer.
// One instance per connection; a breakout move replaces it with a new one.
import { waitForIceGathering } from './rtc.js';

export const PC_CONFIG = { iceServers: [] };

/** The TURN servers of the join result (docs/protocol.md): for every connection made from now
 * on, and for `pc`, made before `join`, whose gathering starts at its first answer. */
export function useIceServers(iceServers, pc) {
  if (!Array.isArray(iceServers) || !iceServers.length) return;
  PC_CONFIG.iceServers = iceServers;
  if (pc && pc.signalingState !== 'closed') {
    pc.setConfiguration({ ...pc.getConfiguration(), iceServers });
  }
}

export class Subscriber {
  /** onChange(): the set of received tracks changed; onError(err): a negotiation failed. */
  constructor({ sig, onChange, onError }) {
    this.sig = sig;
    this.onChange = onChange;
    this.onError = onError;
    this.pc = new RTCPeerConnection(PC_CONFIG);
    this.pc.ontrack = (e) => this.onRemoteTrack(e);
    this.midToTrack = new Map(); // mid -> trackId, from the last subscriberOffer
    this.receivers = new Map(); // remote trackId -> MediaStreamTrack we receive it on
    this.chain = Promise.resolve();
    this.closed = false;
  }

  /** Answer no offer before `promise` settles: an offer may come before the join result,
   * whose iceServers (TURN) the connection must have before it gathers. */
  holdUntil(promise) {
    this.chain = this.chain.then(() => promise).catch(() => {});
  }

  queueOffer(data) {
    // Never two negotiations at once: each offer waits for the previous answer.
    this.chain = this.chain
      .then(() => this.answer(data))
      .catch((err) => { if (!this.closed) this.onError(err); });
  }

  async answer({ sdp, tracks, offerId }) {
    if (this.closed) return;
    const pc = this.pc;
    // Before setRemoteDescription: ontrack fires inside it and needs the new map.
    this.midToTrack = new Map(Object.entries(tracks || {}));
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await waitForIceGathering(pc);
    if (this.closed) return; // replaced meanwhile: the server no longer waits for this one
    await this.sig.request('subscriberAnswer', { sdp: pc.localDescription.sdp, offerId });
    this.reconcile();
  }

  onRemoteTrack(e) {
    const trackId = this.midToTrack.get(e.transceiver.mid);
    if (!trackId || this.closed) return;
    // A reused m-line carries a new remote track on the same receiver track.
    for (const [id, t] of this.receivers) if (t === e.track) this.receivers.delete(id);
    this.receivers.set(trackId, e.track);
    this.onChange();
  }

  /**
   * Rebuild trackId -> receiver track from the negotiated transceivers. ontrack does not
   * fire when an m-line goes inactive, nor reliably when a mid switches straight to another
   * track, so the negotiated state is the source of truth.
   */
  reconcile() {
    if (this.closed) return;
    const receivers = new Map();
    for (const t of this.pc.getTransceivers()) {
      const trackId = t.mid !== null && this.midToTrack.get(t.mid);
      const receiving = t.currentDirection === 'recvonly' || t.currentDirection === 'sendrecv';
      if (trackId && receiving) receivers.set(trackId, t.receiver.track);
    }
    this.receivers = receivers;
    this.onChange();
  }

  close() {
    this.closed = true;
    this.receivers = new Map();
    this.pc.close();
  }
}
