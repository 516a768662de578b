// One meeting session: the WebSocket, the lobby wait (lobby.js), the publish and subscribe
// connections (publisher.js, subscriber.js), roles and the webinar stage, breakout moves, and
// the bookkeeping that maps received tracks to participants (docs/protocol.md). Panels attach
// through onJoined.
import { Signaling, SignalingError, wsUrl } from './signaling.js';
import { state } from './state.js';
import { reportVisibility } from './visibility.js';
import { showError, showStatus } from './status.js';
import { Subscriber, useIceServers } from './subscriber.js';
import { Publisher } from './publisher.js';
import { Roster, STAGE_ROLES } from './roster.js';
import { admission } from './lobby.js';
import { tokenClaims } from './token.js';
import { NetworkRecovery } from './netchange.js';

export class Meeting {
  /**
   * view: a MeetingView; stream: local MediaStream (may have no tracks); openStream(): a new
   * {stream, error} when media has to be reopened (a webinar attendee brought on stage);
   * onJoined(meeting, joinResult): called synchronously after `join`, before any later event;
   * onEnded({left, error}): called once, when we left or the session ended;
   * onWaiting(waiting): a lobby room keeps us waiting (true) until a host admits us (false).
   */
  constructor({ view, stream, openStream, onJoined, onEnded, onWaiting }) {
    Object.assign(this, { view, stream, openStream, onJoined, onEnded, onWaiting });
    this.sig = null;
    this.subscriber = null;
    this.publisher = null;
    this.self = null; // {id, name, role, handRaised, onStage}
    this.selfId = null;
    this.role = null;
    this.roomType = 'meeting';
    this.settings = {}; // {chat, lobby} from the join result
    this.onStage = false;
    this.groupId = null;
    this.breakouts = null; // the last `b` of docs/protocol.md, "Breakout groups"
    this.roster = new Roster(this);
    this.listeners = new Set();
    this.mediaReleased = false; // we stopped our camera/microphone (off stage)
    this.publishing = null; // the startPublishing in progress
    this.leaving = false;
    this.ended = false;
    // A token to come back with, kept fresh by the server while we are connected: the link's
    // own token may have expired by the time a long meeting needs a reconnect.
    this.sessionToken = null;
    this.recovery = new NetworkRecovery(this); // network changes (netchange.js)
    this.resuming = null; // the resume on a new socket in progress
  }

  get publishPc() { return this.publisher?.pc ?? null; }
  get subscribePc() { return this.subscriber?.pc ?? null; }
  get participants() { return this.roster.participants; }

  /** Server event handler that reports its own failures instead of throwing them away. */
  on(event, fn) {
    return this.sig.on(event, (data) => {
      try { fn.call(this, data); } catch (err) { showError(err, `Handling ${event}`); }
    });
  }

  /** Local notification: participants, roles, hands, stage, group or breakouts changed. */
  onChange(fn) { this.listeners.add(fn); }

  changed() {
    for (const fn of this.listeners) {
      try { fn(this); } catch (err) { console.error('change listener', err); }
    }
  }

  request(method, params, timeoutMs) {
    return this.sig.request(method, params, timeoutMs);
  }

  person(id) {
    return id === this.selfId ? this.self : this.participants.get(id);
  }

  canPublish() {
    return this.roomType !== 'webinar' || this.role !== 'attendee' || this.onStage;
  }

  isModerator() {
    return STAGE_ROLES.has(this.role);
  }

  async join(token) {
    Object.assign(state, { joined: false, selfId: null, publishPc: null, subscribePc: null,
      activeSpeaker: null });
    state.participants.clear();

    this.sig = await Signaling.connect(wsUrl(token));
    this.sig.on('close', (e) => {
      if (e.code === 1006 && !this.leaving && !e.byClient && this.selfId) {
        // Dropped without a close from the server (a network change, a lost Wi-Fi): come
        // back on a new socket, keeping our connections (resume ends the meeting if not).
        this.resume().catch(() => {});
        return;
      }
      this.end(this.leaving || e.byClient ? null : e.error);
    });
    const r = this.roster;
    this.on('participantJoined', (d) => { r.joined(d.participant); this.changed(); });
    this.on('participantLeft', (d) => { r.left(d.participantId); this.changed(); });
    this.on('trackPublished', (d) => r.trackPublished(d.track));
    this.on('trackUnpublished', (d) => r.trackUnpublished(d.trackId, d.participantId));
    this.on('trackMuted', this.onTrackMuted);
    this.on('handRaised', (d) => { if (r.update(d.participantId, { handRaised: d.raised })) this.changed(); });
    this.on('stageChanged', this.onStageChanged);
    this.on('breakoutsChanged', (d) => { this.breakouts = d.breakouts; r.refreshAll(); this.changed(); });
    this.on('moved', this.onMoved);
    this.on('activeSpeaker', (d) => this.setActiveSpeaker(d.participantId));
    this.on('tokenRefreshed', (d) => this.keepToken(d.token));
    // Always answered on the connection current when the offer arrives.
    this.on('subscriberOffer', (d) => this.subscriber.queueOffer(d));

    // Created before `join` because the server may send subscriberOffer right after it.
    this.subscriber = this.newSubscriber();
    let joined;
    this.subscriber.holdUntil(new Promise((resolve) => { joined = resolve; }));
    this.view.reset(); // now: a participantJoined may come before the join result
    let res = await this.sig.request('join');
    this.keepToken(res.token);
    if (res.lobby) res = await this.waitInLobby();
    useIceServers(res.iceServers, this.subscriber.pc); // TURN, before the first answer
    joined();
    this.keepToken(res.token);
    this.applyJoin(res);
    reportVisibility((method, params) => this.request(method, params));
    this.recovery.start();
    this.onJoined?.(this, res);
    state.joined = true;
    state.joins += 1;
    this.changed();
    if (this.canPublish()) {
      await this.startPublishing();
    } else {
      this.releaseMedia(); // receive-only: the camera light goes off
      showStatus('You joined as an attendee: raise your hand to ask to speak.', 'info', 5000);
    }
  }

  /** The server's latest token for coming back (docs/protocol.md, "Reconnecting"). */
  keepToken(token) {
    if (!token) return;
    this.sessionToken = token;
    state.sessionTokenExpires = tokenClaims(token).exp ?? null;
  }

  /**
   * Go on over a new socket as the same participant with the same peer connections
   * (docs/protocol.md, "Network change"). When that fails (no server, or it could not keep
   * them) the meeting ends with a `closed` SignalingError, and room.js joins again the long
   * way (a new Meeting); the promise rejects with it.
   */
  resume() {
    this.resuming ??= this.resumeNow()
      .catch((err) => { this.end(err); throw err; })
      .finally(() => { this.resuming = null; });
    return this.resuming;
  }

  async resumeNow() {
    let res;
    try {
      await this.sig.reopen(wsUrl(this.sessionToken));
      res = await this.sig.request('join', { keepMedia: true });
    } catch (err) {
      throw new SignalingError('closed', `Reconnecting failed: ${err.message}`);
    }
    if (!res.mediaKept) {
      throw new SignalingError('closed', 'The server no longer had our media connections.');
    }
    this.keepToken(res.token);
    // What changed while the socket was gone: who is here, their tracks, the chat.
    const present = new Set((res.participants || []).map((p) => p.id));
    for (const id of [...this.participants.keys()]) if (!present.has(id)) this.roster.left(id);
    for (const p of res.participants || []) this.roster.joined(p);
    this.roster.replaceTracks(res.tracks);
    for (const message of res.chat || []) this.sig._emit('chat', { message });
    state.resumes += 1;
    this.changed();
  }

  /** A lobby room: wait on this socket until a host decides, then join for real. */
  async waitInLobby() {
    state.waiting = true;
    this.onWaiting?.(true);
    try {
      await admission(this.sig);
    } finally {
      state.waiting = false;
    }
    this.onWaiting?.(false);
    return this.sig.request('join');
  }

  applyJoin(res) {
    const hands = new Set(res.hands || []);
    this.self = { ...res.self, handRaised: Boolean(res.self.handRaised || hands.has(res.self.id)) };
    this.selfId = res.self.id;
    this.role = res.self.role;
    this.roomType = res.roomType || 'meeting';
    this.settings = res.settings || {};
    this.onStage = Boolean(res.self.onStage);
    this.groupId = res.groupId ?? null;
    this.breakouts = res.breakouts ?? null;
    Object.assign(state, { selfId: this.selfId, role: this.role, roomType: this.roomType,
      onStage: this.onStage, groupId: this.groupId });
    this.view.setRoomType(this.roomType);
    this.view.addParticipant(this.self, { self: true, stream: this.stream });
    this.view.setInfo(this.selfId, this.self);
    for (const p of res.participants || []) {
      this.roster.joined({ ...p, handRaised: Boolean(p.handRaised || hands.has(p.id)) });
    }
    for (const t of res.tracks || []) this.roster.trackPublished(t);
    this.roster.refreshAll(); // anyone announced before the result, now with the room type
    for (const p of this.participants.values()) this.view.setInfo(p.id, p);
    this.setActiveSpeaker(res.activeSpeaker?.participantId ?? null);
    this.refreshSelf();
  }

  // --- connections ----------------------------------------------------------------------

  newSubscriber() {
    const sub = new Subscriber({
      sig: this.sig,
      onChange: () => { if (sub === this.subscriber) this.roster.refreshAll(); },
      onError: (err) => {
        // An answer lost with a socket being replaced: the resumed session offers again.
        if (this.ended || (err.code === 'closed' && this.resuming)) return;
        showError(err, 'Could not receive media');
      },
    });
    this.watchConnection(sub.pc, 'Receiving media');
    state.subscribePc = sub.pc;
    return sub;
  }

  /** Publish camera and microphone unless already sending (or on the way to it). */
  startPublishing() {
    if (this.publisher?.sending) return Promise.resolve();
    if (!this.publishing) {
      const run = this.publishNow().finally(() => { if (this.publishing === run) this.publishing = null; });
      this.publishing = run;
    }
    return this.publishing;
  }

  async publishNow() {
    if (this.mediaReleased) {
      const { stream, error } = await this.openStream();
      if (error) showError(error, 'Camera/microphone');
      if (this.ended) { stream.getTracks().forEach((t) => t.stop()); return; }
      this.stream = stream;
      this.mediaReleased = false;
      this.view.setStream(this.selfId, stream);
    }
    const pub = this.publisher ??= new Publisher({
      sig: this.sig,
      watch: (pc) => { this.watchConnection(pc, 'Sending media'); state.publishPc = pc; },
    });
    try {
      if (!(await pub.publish(this.stream))) {
        if (pub === this.publisher) showStatus('Joined without camera or microphone.', 'warn');
        return;
      }
      // A mute toggled while publishing was only local so far.
      for (const kind of ['audio', 'video']) {
        if (this.isMuted(kind) && pub.ownTrackIds[kind]) this.sendMute(kind, true);
      }
    } catch (err) {
      // Still in the meeting, only receiving; say so rather than failing the join.
      if (!this.ended && pub === this.publisher) showError(err, 'Could not send your camera/microphone');
    } finally {
      this.refreshSelf();
      this.onLocalChange?.();
    }
  }

  releaseMedia() {
    this.stream?.getTracks().forEach((t) => t.stop());
    this.mediaReleased = true;
    this.view.setStream(this.selfId, null);
    this.onLocalChange?.();
  }

  // --- events ---------------------------------------------------------------------------

  onTrackMuted({ trackId, participantId, muted }) {
    if (participantId !== this.selfId) {
      this.roster.trackMuted(trackId, participantId, muted);
      return;
    }
    // Someone (a host) muted us: follow it locally so the buttons tell the truth.
    const own = this.publisher?.ownTrackIds || {};
    const kind = Object.keys(own).find((k) => own[k] === trackId);
    const track = kind && this.localTrack(kind);
    if (track) track.enabled = !muted;
    if (muted && kind) showStatus(`A host muted your ${kind === 'video' ? 'camera' : 'microphone'}.`, 'warn', 4000);
    this.refreshSelf();
    this.onLocalChange?.();
  }

  onStageChanged({ participantId, onStage }) {
    if (!this.roster.update(participantId, { onStage })) return;
    if (participantId === this.selfId) this.onSelfStage(onStage);
    this.changed();
  }

  onSelfStage(onStage) {
    this.onStage = onStage;
    state.onStage = onStage;
    if (this.roomType !== 'webinar' || this.role !== 'attendee') return;
    if (onStage) {
      showStatus('You are on stage: your camera and microphone are being sent.', 'ok', 4000);
      this.startPublishing();
    } else {
      // The server already unpublished our tracks.
      this.publisher?.stopSending();
      this.releaseMedia();
      this.refreshSelf();
      showStatus('You are back in the audience.', 'info', 4000);
    }
  }

  /** Who speaks in our room or group (docs/protocol.md, "Active speaker"); null: nobody. */
  setActiveSpeaker(participantId) {
    state.activeSpeaker = participantId;
    this.view.setActiveSpeaker(participantId);
  }

  /** Our media moved to a breakout group (or back), or to another media worker (reason
   * media_restart): new connections, same page. */
  onMoved({ groupId, tracks, activeSpeaker, reason }) {
    this.groupId = groupId ?? null;
    state.groupId = this.groupId;
    this.setActiveSpeaker(activeSpeaker?.participantId ?? null); // the new group's speaker
    this.subscriber.close();
    this.subscriber = this.newSubscriber(); // the next subscriberOffer is answered on this one
    this.publisher?.close();
    this.publisher = null;
    this.publishing = null; // one still running belongs to the closed connection
    state.publishPc = null;
    this.roster.replaceTracks(tracks);
    this.changed();
    const group = this.breakouts?.groups?.find((g) => g.id === this.groupId);
    // media_restart: same group, the server moved the call to another media worker
    showStatus(reason === 'media_restart' ? 'Reconnecting the call…'
      : this.groupId ? `You are now in ${group?.name || 'a breakout group'}.`
        : 'You are back in the main room.', 'info', 4000);
    if (this.canPublish()) this.startPublishing();
  }

  refreshSelf() {
    if (!this.selfId) return;
    this.view.setState(this.selfId, this.selfMediaState());
    this.view.setVisible(this.selfId, this.canPublish());
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
    this.refreshSelf();
    if (this.publisher?.ownTrackIds[kind]) this.sendMute(kind, muted);
  }

  sendMute(kind, muted) {
    this.sig.request('mute', { trackId: this.publisher.ownTrackIds[kind], muted })
      .catch((err) => showError(err, `Could not ${muted ? 'mute' : 'unmute'}`));
  }

  async leave() {
    if (this.ended) return;
    this.leaving = true;
    // The server closes the socket after answering; do not wait long if it is gone. Waiting
    // in the lobby there is nothing to leave (`not_joined`): closing the socket is enough.
    if (this.selfId) await this.sig?.request('leave', undefined, 3000).catch(() => {});
    this.end(null);
  }

  /** Tear everything down once; error is null when we left on purpose. */
  end(error) {
    if (this.ended) return;
    this.ended = true;
    state.joined = false;
    this.publisher?.close();
    this.subscriber?.close();
    this.sig?.close();
    this.stream?.getTracks().forEach((t) => t.stop());
    this.onEnded?.({ left: this.leaving, error });
  }

  watchConnection(pc, what) {
    this.recovery.watch(pc);
    let interrupted = false;
    pc.addEventListener('connectionstatechange', () => {
      if (this.ended || pc.signalingState === 'closed') return;
      const s = pc.connectionState;
      if (s === 'failed' || s === 'disconnected') {
        // NetworkRecovery restarts ICE; an error is shown only if that fails
        interrupted = true;
        showStatus(`${what}: connection interrupted, retrying…`, 'warn');
      } else if (s === 'connected' && interrupted) {
        interrupted = false; // only clear the warning we showed, never someone else's error
        showStatus(`${what}: connection restored.`, 'ok', 3000);
      }
    });
  }
}
