// The meeting's DOM: video tiles, participant list and chat. Knows nothing about signalling or
// peer connections; meeting.js tells it what to show.

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/);
  return (parts[0][0] + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
}

export class MeetingView {
  constructor() {
    this.tiles = $('tiles');
    this.list = $('participant-list');
    this.count = $('participant-count');
    this.chatLog = $('chat-log');
    this.soundButton = $('sound-btn');
    this.soundButton.addEventListener('click', () => this.enableSound());
    this.entries = new Map(); // participant id -> {tile, video, badge, li, listBadge, tracks}
    this.chatIds = new Set();
    this.blocked = new Set(); // videos the autoplay policy made us mute
  }

  reset() {
    this.tiles.replaceChildren();
    this.list.replaceChildren();
    this.chatLog.replaceChildren();
    this.entries.clear();
    this.chatIds.clear();
    this.blocked.clear();
    this.soundButton.hidden = true;
    this._layout();
  }

  addParticipant(p, { self = false, stream = null } = {}) {
    if (this.entries.has(p.id)) return;
    const tile = el('div', self ? 'tile self' : 'tile');
    tile.dataset.participantId = p.id;
    const video = el('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = self; // hear others, never yourself
    const label = el('div', 'label');
    const badge = el('span', 'badge', 'Mic off');
    badge.hidden = true;
    label.append(el('span', 'name', self ? `${p.name} (you)` : p.name), badge);
    tile.append(video, el('div', 'avatar', initials(p.name)), label);

    const li = el('li', 'person');
    const listBadge = el('span', 'badge', 'Mic off');
    listBadge.hidden = true;
    li.append(el('span', 'name', self ? `${p.name} (you)` : p.name),
      el('span', 'role', p.role || ''), listBadge);

    // Yourself first in both the grid and the list.
    if (self) { this.tiles.prepend(tile); this.list.prepend(li); } else {
      this.tiles.append(tile); this.list.append(li);
    }
    this.entries.set(p.id, { tile, video, badge, li, listBadge, tracks: [] });
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
    this._layout();
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

  setState(id, { audioMuted, videoOff }) {
    const entry = this.entries.get(id);
    if (!entry) return;
    entry.badge.hidden = !audioMuted;
    entry.listBadge.hidden = !audioMuted;
    entry.tile.classList.toggle('no-video', videoOff);
  }

  addChat(msg, selfId) {
    if (!msg || this.chatIds.has(msg.id)) return; // our own message comes as result and event
    this.chatIds.add(msg.id);
    const log = this.chatLog;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const li = el('li', msg.participantId === selfId ? 'msg mine' : 'msg');
    const head = el('div', 'msg-head');
    const time = msg.ts ? new Date(msg.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
    head.append(el('span', 'msg-name', msg.name || 'someone'), el('span', 'msg-time', time));
    li.append(head, el('div', 'msg-text', msg.text));
    log.append(li);
    if (atBottom || msg.participantId === selfId) log.scrollTop = log.scrollHeight;
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
    const n = this.entries.size;
    this.tiles.style.setProperty('--cols', String(Math.max(1, Math.ceil(Math.sqrt(n)))));
    this.count.textContent = String(n);
  }
}
