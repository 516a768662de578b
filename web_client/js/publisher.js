// The publish connection: we offer our camera and microphone (sendonly), the server answers.
// The whole offer is sent each time; new m-lines become tracks (docs/protocol.md, `publish`).
// A screen share is one more video m-line, its source "screen" (shareScreen, stopScreen).
import { waitForIceGathering } from './rtc.js';
import { PC_CONFIG } from './subscriber.js';

const TRACK_NAMES = { audio: 'microphone', video: 'camera' }; // also their `sources`
// A screen share: every pixel (text stays sharp), few frames a second.
const SCREEN_ENCODING = { maxFramerate: 15, scaleResolutionDownBy: 1 };
const ORDER = { audio: 0, video: 1 };
// The camera in three encodings (simulcast, RFC 8853), the lowest resolution first: the server
// forwards each subscriber one of them and switches at keyframes (docs/architecture.md).
export const CAMERA_ENCODINGS = [
  { rid: 'q', scaleResolutionDownBy: 4 },
  { rid: 'h', scaleResolutionDownBy: 2 },
  { rid: 'f' },
];

function cameraInit(track, stream) {
  const init = { direction: 'sendonly', streams: [stream] };
  if (track.kind === 'video') init.sendEncodings = CAMERA_ENCODINGS.map((e) => ({ ...e }));
  return init;
}

export class Publisher {
  constructor({ sig, watch }) {
    this.sig = sig;
    this.watch = watch; // watch(pc): connection state reporting
    this.pc = null;
    this.ownTrackIds = {}; // kind -> trackId the server gave our published track
    this.screen = null; // {transceiver, trackId} while we share a screen
    this.negotiating = Promise.resolve(); // one offer/answer at a time (camera, screen)
    this.closed = false;
  }

  connection() {
    if (!this.pc) {
      this.pc = new RTCPeerConnection(PC_CONFIG);
      this.watch(this.pc);
    }
    return this.pc;
  }

  /** Send the live tracks of `stream` on new m-lines. Resolves false if there was nothing. */
  async publish(stream) {
    const tracks = (stream?.getTracks() || []).filter((t) => t.readyState === 'live')
      .sort((a, b) => ORDER[a.kind] - ORDER[b.kind]);
    if (!tracks.length) return false;
    const pc = this.connection();
    const sent = tracks.map((track) => ({
      track, transceiver: pc.addTransceiver(track, cameraInit(track, stream)),
    }));
    const res = await this.negotiate(sent.map(({ track, transceiver }) => (
      { transceiver, source: TRACK_NAMES[track.kind] })));
    if (!res) return false;
    if (!Object.keys(this.ownTrackIds).length) {
      throw new Error('The server accepted none of the tracks.');
    }
    return true;
  }

  /**
   * Offer the connection's m-lines, `added` ([{transceiver, source}]) named by their source;
   * resolves the `publish` result, or null once closed. Queued behind any negotiation
   * still running.
   */
  negotiate(added) {
    const run = this.negotiating.then(() => this.negotiateNow(added));
    this.negotiating = run.catch(() => {});
    return run;
  }

  async negotiateNow(added) {
    const pc = this.connection();
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc);
    if (this.closed) return null;
    // Mids exist only after setLocalDescription.
    const names = {};
    const sources = {};
    for (const { transceiver, source } of added) {
      names[transceiver.mid] = source;
      sources[transceiver.mid] = source;
    }
    const res = await this.sig.request('publish', { sdp: pc.localDescription.sdp, names, sources });
    if (this.closed) return null;
    await pc.setRemoteDescription({ type: 'answer', sdp: res.sdp });
    this.ownTrackIds = {};
    for (const t of res.tracks || []) {
      if (t.source === 'screen') continue;
      const kind = t.kind || (t.name === 'camera' ? 'video' : 'audio');
      this.ownTrackIds[kind] = t.id;
    }
    return res;
  }

  /**
   * A new ICE session on this connection (a network change): the offer carries new ICE
   * credentials, and the server's answer new ones of its own (docs/protocol.md, "Network
   * change"). DTLS and every track go on. Resolves once answered (null if closed).
   */
  restartIce() {
    if (!this.pc) return Promise.resolve(null);
    this.pc.restartIce();
    return this.negotiate([]);
  }

  /**
   * Send a screen capture (getDisplayMedia's video track) on a new m-line, at full
   * resolution and a low frame rate. Resolves its track id, or null once closed.
   */
  async shareScreen(track) {
    await this.stopScreen();
    track.contentHint = 'detail'; // the encoder keeps resolution and gives up frame rate
    const transceiver = this.connection().addTransceiver(track, {
      direction: 'sendonly', streams: [new MediaStream([track])],
    });
    const res = await this.negotiate([{ transceiver, source: 'screen' }]);
    const shared = res?.tracks?.find((t) => t.source === 'screen');
    if (!shared) {
      transceiver.sender.replaceTrack(null).catch(() => {});
      if (!res) return null;
      throw new Error('The server did not accept the screen share.');
    }
    this.screen = { transceiver, trackId: shared.id };
    const params = transceiver.sender.getParameters();
    params.encodings = params.encodings.map((e) => ({ ...e, ...SCREEN_ENCODING }));
    params.degradationPreference = 'maintain-resolution';
    await transceiver.sender.setParameters(params);
    return shared.id;
  }

  /**
   * Stop sending the screen and unpublish it. Its m-line stays (sending nothing), as for
   * a demote: a stopped transceiver could take the connection's transport with it.
   */
  async stopScreen() {
    const screen = this.screen;
    if (!screen) return;
    this.screen = null;
    await screen.transceiver.sender.replaceTrack(null).catch(() => {});
    if (this.closed) return;
    await this.sig.request('unpublish', { trackId: screen.trackId }).catch((err) => {
      if (err.code !== 'not_found') throw err; // already gone (a demote, a move)
    });
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
    this.screen = null;
  }

  get sending() {
    return Object.keys(this.ownTrackIds).length > 0;
  }

  close() {
    this.closed = true;
    this.pc?.close();
  }
}
