// The meeting's video tiles and participant list. Knows nothing about signalling or peer
// connections; meeting.js and roster.js tell it what to show. Chat is in chat.js.
import { $, el, initials } from './dom.js';

export class MeetingView {
  constructor() {
    this.tiles = $('tiles');
    this.list = $('participant-list');
    this.count = $('participant-count');
    this.emptyNote = $('stage-empty');
    this.soundButton = $('sound-btn');
    this.soundButton.addEventListener('click', () => this.enableSound());
    this.entries = new Map(); // participant id -> {tile, video, badge, li, listBadge, ...}
    this.screenArea = $('screen-area');
    this.screens = new Map(); // participant id -> {box, video, track}: screen shares, shown large
    this.blocked = new Set(); // videos the autoplay policy made us mute
    this.speakerId = null; // the active speaker's participant id (setActiveSpeaker)
  }

  /** Empty, before `join`: events may arrive before its result and must not be wiped. */
  reset() {
    this.tiles.replaceChildren();
    this.list.replaceChildren();
    this.entries.clear();
    this.speakerId = null;
    for (const id of [...this.screens.keys()]) this.setScreen(id, null);
    this.blocked.clear();
    this.soundButton.hidden = true;
    this.setRoomType('meeting');
  }

  setRoomType(roomType) {
    this.roomType = roomType;
    $('meeting').dataset.roomType = roomType;
    this.emptyNote.textContent = roomType === 'webinar'
      ? 'Nobody is on stage yet.' : 'Nobody else is here yet.';
    this._layout();
  }

  addParticipant(p, { self = false, stream = null } = {}) {
    if (this.entries.has(p.id)) return;
    const displayName = self ? `${p.name} (you)` : p.name;
    const tile = el('div', self ? 'tile self' : 'tile');
    tile.dataset.participantId = p.id;
    const video = el('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = self; // hear others, never yourself
    const label = el('div', 'label');
    const hand = el('span', 'hand', '✋');
    hand.title = 'Hand raised';
    const badge = el('span', 'badge', 'Mic off');
    label.append(hand, el('span', 'name', displayName), badge);
    tile.append(video, el('div', 'avatar', initials(p.name)), label);

    const li = el('li', 'person');
    li.dataset.participantId = p.id;
    const listHand = el('span', 'hand', '✋');
    listHand.title = 'Hand raised';
    const stage = el('span', 'tag', 'on stage');
    const listBadge = el('span', 'badge', 'Mic off');
    const actions = el('span', 'person-actions');
    const main = el('span', 'person-main');
    main.append(listHand, el('span', 'name', displayName), el('span', 'role', p.role || ''),
      stage, listBadge);
    li.append(main, actions);
    for (const n of [hand, badge, listHand, stage, listBadge]) n.hidden = true;

    // Yourself first in both the grid and the list.
    if (self) { this.tiles.prepend(tile); this.list.prepend(li); } else {
      this.tiles.append(tile); this.list.append(li);
    }
    tile.classList.toggle('speaking', p.id === this.speakerId);
    this.entries.set(p.id, { tile, video, badge, hand, li, listBadge, listHand, stage, actions,
      tracks: [] });
    if (stream) { video.srcObject = stream; this._play(video); }
    this._layout();
  }

  removeParticipant(id) {
    const entry = this.entries.get(id);
    if (!entry) return;
    entry.video.srcObject = null;
    this.blocked.delete(entry.video);
    entry.tile.remove();
    entry.li.remove();
    this.entries.delete(id);
    this.setScreen(id, null);
    this._layout();
  }

  /** The <video> elements showing one participant: its tile's, and its screen share's. */
  videoOf(id) { return this.entries.get(id)?.video || null; }

  screenVideoOf(id) { return this.screens.get(id)?.video || null; }

  /** The element where host.js puts one participant's buttons. */
  actionsOf(id) {
    return this.entries.get(id)?.actions || null;
  }

  /** The remote tracks one participant's tile plays: audio and video in one MediaStream. */
  setTracks(id, tracks) {
    const entry = this.entries.get(id);
    if (!entry) return;
    const same = tracks.length === entry.tracks.length && tracks.every((t) => entry.tracks.includes(t));
    if (same) return;
    entry.tracks = tracks;
    // A fresh MediaStream (rather than adding to the old one) makes every browser reload it.
    entry.video.srcObject = tracks.length ? new MediaStream(tracks) : null;
    if (tracks.length) this._play(entry.video);
  }

  /** Our own preview: the local stream, or nothing while we do not send. */
  setStream(id, stream) {
    const entry = this.entries.get(id);
    if (!entry) return;
    entry.video.srcObject = stream;
    if (stream) this._play(entry.video);
  }

  /**
   * A participant's screen share (a received track, or null when it ends): shown large above
   * the tiles, which become a strip while anyone shares.
   */
  setScreen(id, track, name = '') {
    let screen = this.screens.get(id);
    if (screen?.track === track) return;
    if (!track) {
      if (!screen) return;
      screen.video.srcObject = null;
      screen.box.remove();
      this.screens.delete(id);
    } else {
      if (!screen) {
        const video = el('video');
        video.autoplay = true;
        video.playsInline = true;
        video.muted = true; // a screen's sound (none is sent) never doubles the tile's
        const box = el('div', 'screen');
        box.dataset.participantId = id;
        box.append(video, el('div', 'label', `${name} is sharing their screen`));
        this.screenArea.append(box);
        screen = { box, video, track: null };
        this.screens.set(id, screen);
      }
      screen.track = track;
      screen.video.srcObject = new MediaStream([track]);
      this._play(screen.video);
    }
    this.screenArea.hidden = this.screens.size === 0;
    $('meeting').classList.toggle('sharing', this.screens.size > 0);
  }

  setState(id, { audioMuted, videoOff }) {
    const entry = this.entries.get(id);
    if (!entry) return;
    entry.badge.hidden = !audioMuted;
    entry.listBadge.hidden = !audioMuted;
    entry.tile.classList.toggle('no-video', videoOff);
  }

  /** Raised hand and (webinar attendees) stage, on the tile and in the list. */
  setInfo(id, { handRaised, onStage, role }) {
    const entry = this.entries.get(id);
    if (!entry) return;
    entry.hand.hidden = !handRaised;
    entry.listHand.hidden = !handRaised;
    entry.li.classList.toggle('raised', Boolean(handRaised));
    entry.stage.hidden = !(this.roomType === 'webinar' && role === 'attendee' && onStage);
  }

  /** Tiles are shown for who can be seen here (see Roster.refresh); the list shows everyone. */
  setVisible(id, visible) {
    const entry = this.entries.get(id);
    if (!entry || entry.tile.hidden === !visible) return;
    entry.tile.hidden = !visible;
    this._layout();
  }

  /** The active speaker (`activeSpeaker`; null: nobody): highlighted, and enlarged to 2 x 2
   * cells at the head of the grid while other tiles are shown. */
  setActiveSpeaker(id) {
    this.speakerId = id;
    for (const [pid, entry] of this.entries) entry.tile.classList.toggle('speaking', pid === id);
    this._layout();
  }

  enableSound() {
    for (const video of this.blocked) {
      video.muted = false;
      video.play().catch(() => {});
    }
    this.blocked.clear();
    this.soundButton.hidden = true;
  }

  _play(video) {
    video.play().catch((err) => {
      // Autoplay with sound needs a user gesture: play muted (frames still decode) and offer
      // a button that unmutes every tile at once.
      if (err.name !== 'NotAllowedError' || video.muted) return;
      video.muted = true;
      this.blocked.add(video);
      this.soundButton.hidden = false;
      video.play().catch(() => {});
    });
  }

  _layout() {
    const shown = [...this.entries.values()].filter((e) => !e.tile.hidden).length;
    const speaker = this.entries.get(this.speakerId);
    const large = Boolean(speaker && !speaker.tile.hidden && shown > 1);
    this.tiles.classList.toggle('has-speaker', large);
    const cells = large ? shown + 3 : shown; // the speaker's tile takes 2 x 2 cells
    this.tiles.style.setProperty('--cols', String(Math.max(1, Math.ceil(Math.sqrt(cells)))));
    this.count.textContent = String(this.entries.size);
    this.emptyNote.hidden = shown > 0;
  }
}
