// The publish connection: we offer our camera and microphone (sendonly), the server answers.
// The whole offer is sent each time; new m-lines become tracks (docs/protocol.md, `publish`).
import { waitForIceGathering } from './rtc.js';
import { PC_CONFIG } from './subscriber.js';

const TRACK_NAMES = { audio: 'microphone', video: 'camera' };
const ORDER = { audio: 0, video: 1 };

export class Publisher {
  constructor({ sig, watch }) {
    this.sig = sig;
    this.watch = watch; // watch(pc): connection state reporting
    this.pc = null;
    this.ownTrackIds = {}; // kind -> trackId the server gave our published track
    this.closed = false;
  }

  /** Send the live tracks of `stream` on new m-lines. Resolves false if there was nothing. */
  async publish(stream) {
    const tracks = (stream?.getTracks() || []).filter((t) => t.readyState === 'live')
      .sort((a, b) => ORDER[a.kind] - ORDER[b.kind]);
    if (!tracks.length) return false;
    if (!this.pc) {
      this.pc = new RTCPeerConnection(PC_CONFIG);
      this.watch(this.pc);
    }
    const pc = this.pc;
    const sent = tracks.map((track) => ({
      track, transceiver: pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] }),
    }));
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc);
    if (this.closed) return false;
    // Mids exist only after setLocalDescription.
    const names = {};
    for (const { track, transceiver } of sent) names[transceiver.mid] = TRACK_NAMES[track.kind];
    const res = await this.sig.request('publish', { sdp: pc.localDescription.sdp, names });
    if (this.closed) return false;
    await pc.setRemoteDescription({ type: 'answer', sdp: res.sdp });
    const mine = new Set(sent.map((s) => s.transceiver.mid));
    this.ownTrackIds = {};
    for (const t of res.tracks || []) {
      const kind = t.kind || (t.name === 'camera' ? 'video' : 'audio');
      this.ownTrackIds[kind] = t.id;
    }
    if (!Object.keys(this.ownTrackIds).length && mine.size) {
      throw new Error('The server accepted none of the tracks.');
    }
    return true;
  }

  /**
   * The server unpublished our tracks (a webinar demote): send nothing more, but keep the
   * connection and its m-lines. The server keeps this session's publish transport (and its
   * DTLS session) and never reuses a retired mid, so a later promote adds new m-lines on this
   * connection. Neither a new connection nor stopped transceivers work: both bring a new
   * ICE/DTLS transport that the server takes for an ICE restart, and DTLS never completes.
   */
  stopSending() {
    for (const t of this.pc?.getTransceivers() || []) {
      t.sender.replaceTrack(null).catch(() => {});
    }
    this.ownTrackIds = {};
  }

  get sending() {
    return Object.keys(this.ownTrackIds).length > 0;
  }

  close() {
    this.closed = true;
    this.pc?.close();
  }
}
