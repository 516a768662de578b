// One meeting session: the WebSocket, the publish and subscribe peer connections, and the
// bookkeeping that maps received tracks to participants (docs/protocol.md).
import { Signaling, wsUrl } from './signaling.js';
import { waitForIceGathering } from './rtc.js';
import { state } from './state.js';
import { showError, showStatus } from './status.js';

const PC_CONFIG = { iceServers: [] };
const TRACK_NAMES = { audio: 'microphone', video: 'camera' };

export class Meeting {
  /**
   * view: a MeetingView; stream: local MediaStream (may have no tracks);
   * onEnded({left, error}): called once, when we left or the session ended.
   */
  constructor({ view, stream, onEnded }) {
    this.view = view;
    this.stream = stream;
    this.onEnded = onEnded;
    this.sig = null;
    this.publishPc = null;
    this.subscribePc = null;
    this.selfId = null;
    this.participants = state.participants; // remote only: id -> {id, name, role}
    this.tracks = new Map(); // remote trackId -> {id, participantId, kind, name, muted}
    this.midToTrack = new Map(); // subscribe mid -> trackId, from the last subscriberOffer
    this.receivers = new Map(); // remote trackId -> MediaStreamTrack we receive it on
    this.ownTrackIds = {}; // kind -> trackId the server gave our published track
    this.subscribeChain = Promise.resolve();
    this.leaving = false;
    this.ended = false;
  }

  async join(token) {
    Object.assign(state, { joined: false, selfId: null, publishPc: null, subscribePc: null });
    state.participants.clear();

    this.sig = await Signaling.connect(wsUrl(token));
    this.sig.on('close', (e) => this.end(this.leaving || e.byClient ? null : e.error));
    // The server's `error` event precedes a close; the close handler reports it once.
    const handle = (event, fn) => this.sig.on(event, (data) => {
      try { fn.call(this, data); } catch (err) { showError(err, `Handling ${event}`); }
    });
    handle('participantJoined', this.onParticipantJoined);
    handle('participantLeft', this.onParticipantLeft);
    handle('trackPublished', this.onTrackPublished);
    handle('trackUnpublished', this.onTrackUnpublished);
    handle('trackMuted', this.onTrackMuted);
    handle('chat', (d) => this.view.addChat(d.message, this.selfId));
    handle('subscriberOffer', this.queueSubscriberOffer);

    // Created before `join` because the server may send subscriberOffer right after it.
    this.subscribePc = new RTCPeerConnection(PC_CONFIG);
    state.subscribePc = this.subscribePc;
    this.subscribePc.ontrack = (e) => this.onRemoteTrack(e);
    this.watchConnection(this.subscribePc, 'Receiving media');

    const res = await this.sig.request('join');
    this.selfId = res.self.id;
    state.selfId = this.selfId;
    this.view.reset();
    this.view.addParticipant(res.self, { self: true, stream: this.stream });
    this.view.setState(this.selfId, this.selfMediaState());
    for (const p of res.participants || []) this.onParticipantJoined({ participant: p });
    for (const t of res.tracks || []) this.onTrackPublished({ track: t });
    for (const m of res.chat || []) this.view.addChat(m, this.selfId);
    state.joined = true;

    try {
      await this.publish();
    } catch (err) {
      // Still in the meeting, only receiving; say so rather than failing the join.
      if (!this.ended) showError(err, 'Could not send your camera/microphone');
    }
  }

  async publish() {
    const order = { audio: 0, video: 1 };
    const tracks = (this.stream?.getTracks() || []).sort((a, b) => order[a.kind] - order[b.kind]);
    if (!tracks.length) {
      showStatus('Joined without camera or microphone.', 'warn');
      return;
    }
    const pc = new RTCPeerConnection(PC_CONFIG);
    this.publishPc = pc;
    state.publishPc = pc;
    this.watchConnection(pc, 'Sending media');
    const sent = tracks.map((track) => ({
      track,
      transceiver: pc.addTransceiver(track, { direction: 'sendonly', streams: [this.stream] }),
    }));
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc);
    // Mids exist only after setLocalDescription.
    const names = {};
    for (const { track, transceiver } of sent) names[transceiver.mid] = TRACK_NAMES[track.kind];
    const res = await this.sig.request('publish', { sdp: pc.localDescription.sdp, names });
    await pc.setRemoteDescription({ type: 'answer', sdp: res.sdp });
    for (const t of res.tracks || []) {
      const kind = t.kind || (t.name === 'camera' ? 'video' : 'audio');
      this.ownTrackIds[kind] = t.id;
    }
    // A mute toggled while publishing was only local so far.
    for (const kind of ['audio', 'video']) {
      if (this.isMuted(kind) && this.ownTrackIds[kind]) this.sendMute(kind, true);
    }
  }

  // --- subscribe connection -------------------------------------------------------------

  queueSubscriberOffer(data) {
    // Never two negotiations at once: each offer waits for the previous answer.
    this.subscribeChain = this.subscribeChain
      .then(() => this.answerSubscriberOffer(data))
      .catch((err) => { if (!this.ended) showError(err, 'Could not receive media'); });
  }

  async answerSubscriberOffer({ sdp, tracks }) {
    if (this.ended) return;
    const pc = this.subscribePc;
    // Before setRemoteDescription: ontrack fires inside it and needs the new map.
    this.midToTrack = new Map(Object.entries(tracks || {}));
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await waitForIceGathering(pc);
    await this.sig.request('subscriberAnswer', { sdp: pc.localDescription.sdp });
    this.reconcileReceivers();
  }

  onRemoteTrack(e) {
    const trackId = this.midToTrack.get(e.transceiver.mid);
    if (!trackId) return;
    // A reused m-line carries a new remote track on the same receiver track.
    for (const [id, t] of this.receivers) if (t === e.track) this.receivers.delete(id);
    this.receivers.set(trackId, e.track);
    this.refreshAll();
  }

  /**
   * Rebuild trackId -> receiver track from the negotiated transceivers. ontrack does not
   * fire when an m-line goes inactive, nor reliably when a mid switches straight to another
   * track, so the negotiated state is the source of truth.
   */
  reconcileReceivers() {
    const receivers = new Map();
    for (const t of this.subscribePc.getTransceivers()) {
      const trackId = t.mid !== null && this.midToTrack.get(t.mid);
      const receiving = t.currentDirection === 'recvonly' || t.currentDirection === 'sendrecv';
      if (trackId && receiving) receivers.set(trackId, t.receiver.track);
    }
    this.receivers = receivers;
    this.refreshAll();
  }

  // --- events ---------------------------------------------------------------------------

  onParticipantJoined({ participant }) {
    if (participant.id === this.selfId) return;
    this.participants.set(participant.id, participant);
    this.view.addParticipant(participant);
    this.refresh(participant.id);
  }

  onParticipantLeft({ participantId }) {
    this.participants.delete(participantId);
    for (const [id, t] of this.tracks) if (t.participantId === participantId) this.tracks.delete(id);
    this.view.removeParticipant(participantId);
  }

  onTrackPublished({ track }) {
    if (track.participantId === this.selfId) return;
    this.tracks.set(track.id, track);
    this.refresh(track.participantId);
  }

  onTrackUnpublished({ trackId, participantId }) {
    this.tracks.delete(trackId);
    this.refresh(participantId);
  }

  onTrackMuted({ trackId, participantId, muted }) {
    if (participantId === this.selfId) {
      // Someone (a host) muted us: follow it locally so the buttons tell the truth.
      const kind = Object.keys(this.ownTrackIds).find((k) => this.ownTrackIds[k] === trackId);
      const track = kind && this.localTrack(kind);
      if (track) track.enabled = !muted;
      this.view.setState(this.selfId, this.selfMediaState());
      this.onLocalChange?.();
      return;
    }
    const track = this.tracks.get(trackId);
    if (track) track.muted = muted;
    this.refresh(participantId);
  }

  /** Bring one remote tile in line with the published tracks and what we receive. */
  refresh(participantId) {
    if (!this.participants.has(participantId)) return;
    const published = [...this.tracks.values()].filter((t) => t.participantId === participantId);
    const received = published.map((t) => this.receivers.get(t.id)).filter(Boolean);
    const audio = published.find((t) => t.kind === 'audio');
    const video = published.find((t) => t.kind === 'video');
    this.view.setTracks(participantId, received);
    this.view.setState(participantId, {
      audioMuted: !audio || audio.muted,
      videoOff: !video || video.muted || !this.receivers.has(video.id),
    });
  }

  refreshAll() {
    for (const id of this.participants.keys()) this.refresh(id);
  }

  // --- local controls -------------------------------------------------------------------

  localTrack(kind) {
    return this.stream?.getTracks().find((t) => t.kind === kind && t.readyState === 'live') || null;
  }

  isMuted(kind) {
    const track = this.localTrack(kind);
    return !track || !track.enabled;
  }

  selfMediaState() {
    return { audioMuted: this.isMuted('audio'), videoOff: this.isMuted('video') };
  }

  setMuted(kind, muted) {
    const track = this.localTrack(kind);
    if (!track) return;
    track.enabled = !muted; // stops sending at once; the server also pauses forwarding
    this.view.setState(this.selfId, this.selfMediaState());
    if (this.ownTrackIds[kind]) this.sendMute(kind, muted);
  }

  sendMute(kind, muted) {
    this.sig.request('mute', { trackId: this.ownTrackIds[kind], muted })
      .catch((err) => showError(err, `Could not ${muted ? 'mute' : 'unmute'}`));
  }

  async sendChat(text) {
    const res = await this.sig.request('chat', { text });
    this.view.addChat(res.message, this.selfId);
  }

  async leave() {
    if (this.ended) return;
    this.leaving = true;
    // The server closes the socket after answering; do not wait long if it is gone.
    await this.sig?.request('leave', undefined, 3000).catch(() => {});
    this.end(null);
  }

  /** Tear everything down once; error is null when we left on purpose. */
  end(error) {
    if (this.ended) return;
    this.ended = true;
    state.joined = false;
    this.publishPc?.close();
    this.subscribePc?.close();
    this.sig?.close();
    this.stream?.getTracks().forEach((t) => t.stop());
    this.onEnded?.({ left: this.leaving, error });
  }

  watchConnection(pc, what) {
    let interrupted = false;
    pc.addEventListener('connectionstatechange', () => {
      if (this.ended) return;
      const s = pc.connectionState;
      if (s === 'failed') {
        showError(new Error(`${what}: the media connection failed.`));
      } else if (s === 'disconnected') {
        interrupted = true;
        showStatus(`${what}: connection interrupted, retrying…`, 'warn');
      } else if (s === 'connected' && interrupted) {
        interrupted = false; // only clear the warning we showed, never someone else's error
        showStatus(`${what}: connection restored.`, 'ok', 3000);
      }
    });
  }
}
