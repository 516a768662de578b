// Remote participants and their tracks: which tile shows what, hands and the webinar stage.
// The meeting owns the connections; this only maps what it receives onto the view.
import { state } from './state.js';
import { TileViews } from './tileviews.js';

export const STAGE_ROLES = new Set(['host', 'presenter']);

/** Whether p may send media here: everyone in meetings, the stage in webinars. */
export function maySend(roomType, p) {
  return roomType !== 'webinar' || STAGE_ROLES.has(p.role) || Boolean(p.onStage);
}

export class Roster {
  constructor(meeting) {
    this.m = meeting;
    this.participants = state.participants; // remote only: id -> {id, name, role, ...}
    this.tracks = new Map(); // remote trackId -> {id, participantId, kind, name, muted}
    // how each received video is shown, told to the server (hidden ones are not sent)
    this.tileViews = new TileViews((method, params) => meeting.request(method, params),
      () => meeting.sig, state.trackViews);
  }

  get view() { return this.m.view; }

  joined(participant) {
    if (participant.id === this.m.selfId) return;
    const p = { ...this.participants.get(participant.id), ...participant };
    this.participants.set(p.id, p);
    this.view.addParticipant(p);
    this.view.setInfo(p.id, p);
    this.refresh(p.id);
  }

  left(participantId) {
    this.tileViews.set(participantId, []);
    this.participants.delete(participantId);
    for (const [id, t] of this.tracks) if (t.participantId === participantId) this.tracks.delete(id);
    this.view.removeParticipant(participantId);
  }

  trackPublished(track) {
    if (track.participantId === this.m.selfId) return;
    this.tracks.set(track.id, track);
    this.refresh(track.participantId);
  }

  trackUnpublished(trackId, participantId) {
    this.tracks.delete(trackId);
    this.refresh(participantId);
  }

  trackMuted(trackId, participantId, muted) {
    const track = this.tracks.get(trackId);
    if (track) track.muted = muted;
    this.refresh(participantId);
  }

  /** After a breakout move: only the new group's tracks exist for us. */
  replaceTracks(tracks) {
    this.tracks.clear();
    for (const t of tracks || []) if (t.participantId !== this.m.selfId) this.tracks.set(t.id, t);
    this.refreshAll();
  }

  /** hand: raised or not; stage: on stage or not (a promote also lowers the hand). */
  update(id, changes) {
    const p = this.m.person(id);
    if (!p) return null;
    Object.assign(p, changes);
    if (changes.onStage) p.handRaised = false; // the server lowers it without a handRaised event
    this.view.setInfo(id, p);
    if (id !== this.m.selfId) this.refresh(id);
    return p;
  }

  groupOf(participantId) {
    const b = this.m.breakouts;
    return b?.open ? (b.assignments?.[participantId] ?? null) : null;
  }

  /** Bring one remote tile in line with the published tracks and what we receive. */
  refresh(participantId) {
    const p = this.participants.get(participantId);
    if (!p) return;
    const receivers = this.m.subscriber?.receivers || new Map();
    const published = [...this.tracks.values()].filter((t) => t.participantId === participantId);
    const screen = published.find((t) => t.source === 'screen'); // shown large, not in the tile
    const own = published.filter((t) => t !== screen);
    const received = own.map((t) => receivers.get(t.id)).filter(Boolean);
    const audio = own.find((t) => t.kind === 'audio');
    const video = own.find((t) => t.kind === 'video');
    this.view.setTracks(participantId, received);
    this.view.setScreen(participantId, (screen && receivers.get(screen.id)) || null, p.name);
    this.tileViews.set(participantId, [
      ...(video && receivers.has(video.id) ? [[video.id, this.view.videoOf(participantId)]] : []),
      ...(screen && receivers.has(screen.id)
        ? [[screen.id, this.view.screenVideoOf(participantId)]] : []),
    ]);
    const sender = maySend(this.m.roomType, p);
    this.view.setState(participantId, {
      audioMuted: audio ? audio.muted : sender, // no "Mic off" on the audience
      videoOff: !video || video.muted || !receivers.has(video.id),
    });
    // A tile for whoever we get media from; otherwise for who could send it here: in a
    // webinar the stage (hosts, presenters, promoted attendees), and only our own group.
    const visible = published.length > 0 || (this.groupOf(p.id) === this.m.groupId && sender);
    this.view.setVisible(participantId, visible);
  }

  refreshAll() {
    for (const id of this.participants.keys()) this.refresh(id);
  }
}
