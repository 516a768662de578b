// The hosts' analytics dashboard (docs/analytics.md, "Dashboard"): a room's sessions; a
// session's concurrency, a strip per participant (present, speaking), the per-person table and
// its CSV; a recording's views per second along its player's scrubber and its drop-off curve.
// Everything comes from the analytics API with the API key or a host token of the room
// (`Authorization: Bearer`), read from ?token=, typed in, or in dev mode asked for like the
// room page does. Opened as /dashboard?room=<room>[&token=...][&session=<id>][&recording=<id>].

import { clock, dropoffChart, heatChart, timelineChart } from './dashcharts.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const AUTH_KEY = 'mediaserver.analytics.auth';
const statusLine = $('dash-status');

// For automated tests: what the page shows.
window.__dashboard = { ready: false, sessions: null, report: null, recording: null, errors: [] };

let room = params.get('room') || '';
let auth = params.get('token') || sessionStorage.getItem(AUTH_KEY) || '';
let report = null;
let hls = null;
let playing = null; // the recording id in the player

function say(message, error = false) {
  statusLine.textContent = message;
  statusLine.classList.toggle('error', error);
  if (error) window.__dashboard.errors.push(message);
}

async function api(path, asText = false) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${auth}` } });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    const why = { 401: 'The API key or a host token of this room is needed.',
      403: 'This token is not a host token of this room.' }[res.status];
    throw new Error(why || body.error?.message || `HTTP ${res.status}`);
  }
  return asText ? res.text() : res.json();
}

async function devToken() { // dev mode only (404 otherwise), as the room page gets one
  const res = await fetch('/api/dev/token', { method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ room, name: 'Analytics' }) }).catch(() => null);
  const body = res && res.ok ? await res.json().catch(() => ({})) : {};
  return body.token || '';
}

const when = (t) => (t == null ? 'running' : new Date(t * 1000).toLocaleString());
const cell = (text) => {
  const td = document.createElement('td');
  td.textContent = text; // names come from people: text, never HTML
  return td;
};
const fact = (label, value) => {
  const span = document.createElement('span');
  const b = document.createElement('b');
  b.textContent = value;
  span.append(`${label} `, b);
  return span;
};

// ---- sessions ------------------------------------------------------------------------------

async function loadRoom() {
  say('Loading…');
  const { sessions } = await api(`/api/rooms/${encodeURIComponent(room)}/sessions`);
  window.__dashboard.sessions = sessions;
  const body = $('sessions-table').tBodies[0];
  body.replaceChildren(...sessions.slice().reverse().map((s) => {
    const tr = document.createElement('tr');
    tr.className = 'pick';
    tr.dataset.id = s.id;
    tr.append(cell(when(s.started)), cell(when(s.ended)),
      cell(clock((s.ended ?? Date.now() / 1000) - s.started)), cell(s.participants), cell(s.peak));
    tr.addEventListener('click', () => loadSession(s.id).catch((e) => say(e.message, true)));
    return tr;
  }));
  $('sessions-section').hidden = false;
  say(sessions.length ? '' : 'No sessions in this room yet.');
  const wanted = params.get('session') || sessions.at(-1)?.id;
  if (wanted) await loadSession(wanted);
  if (params.get('recording')) await loadRecording(params.get('recording'));
}

const COLUMNS = [ // [field, heading, how it is shown]
  ['name', 'Name'], ['identity', 'Identity'], ['role', 'Role'],
  ['score', 'Score', (s) => s.toFixed(1)], ['presentSeconds', 'Present', clock], ['talkSeconds', 'Speaking', clock],
  ['cameraSeconds', 'Camera', clock], ['visibleSeconds', 'Tab visible', clock],
  ['chat', 'Chat'], ['questions', 'Questions'], ['upvotes', 'Upvotes'], ['votes', 'Votes'],
  ['reactions', 'Reactions'], ['hands', 'Hands'], ['breakouts', 'Breakouts', (b) => b.join(', ')],
];
let sortKey = 'score';
let sortDown = true;

function peopleTable(people) {
  const table = $('people-table');
  const head = document.createElement('tr');
  for (const [key, label] of COLUMNS) {
    const th = document.createElement('th');
    th.dataset.key = key;
    th.textContent = label + (key === sortKey ? (sortDown ? ' ▾' : ' ▴') : '');
    th.addEventListener('click', () => {
      sortDown = key === sortKey ? !sortDown : true;
      sortKey = key;
      peopleTable(people);
    });
    head.append(th);
  }
  table.tHead.replaceChildren(head);
  const rows = people.slice().sort((a, b) => {
    const x = a[sortKey];
    const y = b[sortKey];
    const order = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
    return sortDown ? -order : order;
  });
  table.tBodies[0].replaceChildren(...rows.map((p) => {
    const tr = document.createElement('tr');
    for (const [key, , show] of COLUMNS) tr.append(cell(show ? show(p[key]) : p[key]));
    return tr;
  }));
}

function strips(people, start, end) {
  const span = Math.max(1, end - start);
  const pct = (t) => `${(((t - start) / span) * 100).toFixed(3)}%`;
  const bar = (cls, [a, b]) => {
    const s = document.createElement('span');
    s.className = cls;
    s.style.left = pct(a);
    s.style.width = `${Math.max(0.1, ((b - a) / span) * 100).toFixed(3)}%`;
    s.title = `${new Date(a * 1000).toLocaleTimeString()} – ${new Date(b * 1000).toLocaleTimeString()}`;
    return s;
  };
  $('strips').replaceChildren(...people.flatMap((p) => {
    const who = document.createElement('div');
    who.className = 'who';
    who.textContent = p.name || p.identity;
    who.title = `${p.identity} (${p.role})`;
    const lane = document.createElement('div');
    lane.className = 'lane';
    lane.dataset.identity = p.identity;
    lane.append(...(p.presentIntervals || []).map((iv) => bar('present', iv)),
      ...(p.talkIntervals || []).map((iv) => bar('speaking', iv)));
    return [who, lane];
  }));
}

async function loadSession(id) {
  report = await api(`/api/rooms/${encodeURIComponent(room)}/sessions/${encodeURIComponent(id)}/report`);
  window.__dashboard.report = report;
  const s = report.session;
  for (const tr of $('sessions-table').tBodies[0].rows) {
    tr.setAttribute('aria-current', String(tr.dataset.id === id));
  }
  $('session-title').textContent = `Session of ${when(s.started)}`;
  const f = s.funnel || {};
  $('session-facts').replaceChildren(fact('duration', clock(s.duration)), fact('peak', s.peak),
    fact('average', s.average), fact('invited', f.invited ?? '–'), fact('joined', f.joined ?? '–'),
    fact('stayed to the end', f.stayedToEnd ?? '–'), ...(s.live ? [fact('', 'running')] : []));
  $('session-section').hidden = false;
  timelineChart($('timeline-chart'), report.timeline);
  strips(report.participants, s.started, s.ended ?? s.started + s.duration);
  peopleTable(report.participants);
  $('session-recordings').replaceChildren(...s.recordings.map((rid) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'small';
    b.textContent = `Recording ${rid}`;
    b.addEventListener('click', () => loadRecording(rid).catch((e) => say(e.message, true)));
    return b;
  }));
}

$('csv-btn').addEventListener('click', async () => {
  if (!report) return;
  try {
    const id = report.session.id;
    const text = await api(`/api/rooms/${encodeURIComponent(room)}/sessions/${encodeURIComponent(id)}/report?format=csv`, true);
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
    a.download = `${room}-${id}.csv`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  } catch (e) {
    say(e.message, true);
  }
});

// ---- a recording ---------------------------------------------------------------------------

function attachPlayer(id, playlist) {
  const video = $('rec-video');
  if (playing === id || !playlist) return video;
  playing = id;
  hls?.destroy();
  hls = null;
  if (window.Hls && window.Hls.isSupported()) {
    hls = new window.Hls();
    hls.loadSource(playlist);
    hls.attachMedia(video);
  } else {
    video.src = playlist; // Safari plays HLS natively
  }
  return video;
}

async function loadRecording(id, viewer = '') {
  const query = viewer ? `?viewer=${encodeURIComponent(viewer)}` : '';
  say('Loading what was watched of the recording…');
  const figures = await api(`/api/recordings/${encodeURIComponent(id)}/analytics${query}`);
  say('');
  window.__dashboard.recording = { id, ...figures };
  $('recording-section').hidden = false;
  $('recording-section').dataset.id = id;
  $('recording-title').textContent = `Recording ${id}${viewer ? ` – ${viewer}` : ''}`;
  const c = figures.completion;
  $('recording-facts').replaceChildren(fact('views', figures.views),
    fact('viewers', figures.uniqueViewers), fact('live minutes', figures.liveMinutes),
    fact('replay minutes', figures.replayMinutes), fact('pauses', figures.pauses),
    fact('completion 25/50/75/100 %', ['25', '50', '75', '100'].map((q) => Math.round(c[q] * 100)).join(' / ')));
  const video = attachPlayer(id, figures.links?.playlist);
  heatChart($('heat-chart'), figures, video, $('heat-readout'));
  dropoffChart($('dropoff-chart'), figures.dropoff);
  $('recording-section').scrollIntoView({ block: 'nearest' });
}

const video = $('rec-video');
$('play-btn').addEventListener('click', () => (video.paused ? video.play() : video.pause()));
video.addEventListener('click', () => (video.paused ? video.play() : video.pause()));
video.addEventListener('play', () => { $('play-btn').textContent = '❚❚'; });
video.addEventListener('pause', () => { $('play-btn').textContent = '▶'; });
video.addEventListener('timeupdate', () => { $('rec-position').textContent = clock(video.currentTime); });
$('viewer-form').addEventListener('submit', (e) => {
  e.preventDefault();
  loadRecording($('recording-section').dataset.id, $('viewer-input').value.trim())
    .catch((err) => say(err.message, true));
});

// ---- start ---------------------------------------------------------------------------------

async function show() {
  try {
    if (!auth) auth = await devToken();
    if (!auth) {
      say('Enter the API key or a host token of the room.');
      return;
    }
    await loadRoom();
    window.__dashboard.ready = true;
  } catch (e) {
    say(e.message, true);
  }
}

$('room-input').value = room;
$('auth-form').addEventListener('submit', (e) => {
  e.preventDefault();
  room = $('room-input').value.trim();
  const typed = $('auth-input').value.trim();
  if (typed) {
    auth = typed;
    sessionStorage.setItem(AUTH_KEY, auth);
  }
  report = null;
  show();
});
if (room) show();
