// Entry of /r/<room>: pre-join page (preview, devices, connectivity check) or, with
// ?autojoin=1, straight into the meeting; the lobby's waiting screen; then the meeting
// controls and the "you left" screen.
import { state } from './state.js';
import { initStatus, showStatus, showError, clearStatus, describeError } from './status.js';
import { getToken, tokenFromUrl, tokenClaims } from './token.js';
import { MediaPreview, openMedia, stopStream } from './media.js';
import { PrecheckPanel, precheckResult } from './precheck.js';
import { PC_CONFIG } from './subscriber.js';
import { MeetingView } from './view.js';
import { Meeting } from './meeting.js';
import { Tabs, availableTabs } from './panels.js';
import { ChatPanel } from './chat.js';
import { PeopleControls } from './host.js';
import { NotesPanel } from './notes.js';
import { QaPanel } from './qa.js';
import { PollsPanel } from './polls.js';
import { Reactions } from './reactions.js';
import { BreakoutsPanel } from './breakouts.js';
import { LobbyPanel } from './lobby.js';
import { BroadcastControl } from './broadcast.js';
import { RecordingControl } from './recording.js';
import { CatchUpControl } from './catchup.js';
import { ScreenShareControl } from './screen.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const room = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');
const AUTOJOIN_MEDIA = { audio: true, video: { width: 640, height: 360 } };

let view = null;
let tabs = null;
let features = []; // panels that attach to each new meeting session (see attachFeatures)
let meeting = null;
let preview = null;
let precheck = null;
let mediaConstraints = AUTOJOIN_MEDIA; // reopened on rejoin
let joinName = 'Guest';
// A node we were on shut down (4503 server_draining): until then a failed rejoin is tried
// again, since the load balancer may still send us to it for a moment (docs/operations.md).
let comeBackUntil = 0;
const COME_BACK_FOR_MS = 30_000;

function showSection(id) {
  for (const s of ['prejoin', 'lobby', 'meeting', 'ended']) $(s).hidden = s !== id;
  $('room-flags').hidden = id !== 'meeting';
}

/** A lobby room: the waiting screen (with our own preview) until a host admits us. */
function onWaiting(waiting) {
  showSection(waiting ? 'lobby' : 'meeting');
  $('lobby-preview').srcObject = waiting ? meeting.stream : null;
  $('lobby-preview').hidden = !meeting.stream?.getVideoTracks().length;
  if (waiting) clearStatus();
  else showStatus('The host let you in: joining…');
}

/** With an invitation link the server takes the name from the token, not from us. */
function initialName() {
  const urlToken = tokenFromUrl();
  return (urlToken && tokenClaims(urlToken).name) || params.get('name') || '';
}

/** A token of a session we are coming back from, while it is valid for a little longer. */
function returnTokenOf(previous) {
  const token = previous?.sessionToken;
  const exp = token ? tokenClaims(token).exp : 0;
  return exp * 1000 > Date.now() + 10_000 ? token : null;
}

async function startMeeting(name, stream) {
  // Coming back (a reconnect, or Rejoin after leaving): the server's fresh token for our
  // place, which outlives the link's own token in a long meeting.
  const returnToken = returnTokenOf(meeting);
  joinName = name;
  showSection('meeting');
  showStatus('Joining…');
  view ??= new MeetingView();
  meeting = new Meeting({
    view, stream, onEnded, onWaiting, onJoined: attachFeatures,
    openStream: () => openMedia(mediaConstraints), // a webinar attendee brought on stage
  });
  if (returnToken) meeting.sessionToken = returnToken; // kept should this join fail
  meeting.onLocalChange = updateControls;
  updateControls();
  try {
    await meeting.join(returnToken || await getToken(room, name));
    if (!meeting.ended && !state.lastError) showStatus('You are in the meeting.', 'ok', 2500);
  } catch (err) {
    // If the socket close already ended it, that carried the better reason; end() is once only.
    meeting.end(err);
  }
  updateControls();
}

/** Called synchronously with the join result, so no event after it is missed. */
function attachFeatures(m, res) {
  comeBackUntil = 0; // in again
  for (const f of features) {
    try { f.attach(m, res); } catch (err) { showError(err, 'Setting up the meeting panels'); }
  }
  m.onChange(() => { tabs.configure(availableTabs(m)); updateControls(); });
  tabs.configure(availableTabs(m));
}

function onEnded({ left, error }) {
  if (error?.closeCode === 4503 && error.code === 'server_draining') {
    comeBackUntil = Date.now() + COME_BACK_FOR_MS;
  }
  // a rejoin that could not reach a node (a refusal by the server has a close code)
  const comingBack = !left && !meeting?.selfId && !error?.closeCode &&
    Date.now() < comeBackUntil;
  if (error?.closeCode === 4503 || comingBack ||
      (!left && meeting?.selfId && error?.code === 'closed')) {
    // The media worker carrying our call restarted (media_restart), our node shuts down
    // (server_draining: the load balancer sends us to another), our media connection went
    // silent (media_lost), or the socket dropped (network switch, sleep): the server keeps our
    // place for a grace period, so come straight back.
    showStatus('Connection lost: reconnecting…', 'warn');
    setTimeout(rejoin, 1000);
    return;
  }
  const wasIn = Boolean(meeting?.selfId);
  const refused = error?.code === 'refused';
  showSection('ended');
  $('lobby-preview').srcObject = null;
  $('ended-title').textContent = left ? 'You left the meeting'
    : error?.code === 'removed' ? 'You were removed from the meeting'
      : refused ? 'The host did not let you in'
        : wasIn ? 'You are no longer in the meeting' : 'Could not join the meeting';
  $('rejoin-btn').hidden = refused; // the host decided: no way to knock again from here
  $('meeting').classList.remove('merging');
  $('ended-detail').textContent = error ? describeError(error) : '';
  if (error) showError(error, wasIn ? 'Disconnected' : 'Could not join');
  else clearStatus();
}

async function rejoin() {
  $('rejoin-btn').disabled = true;
  state.lastError = null;
  try {
    const { stream, error } = await openMedia(mediaConstraints);
    if (error) showError(error, 'Camera/microphone');
    await startMeeting(joinName, stream);
  } finally {
    $('rejoin-btn').disabled = false;
  }
}

function updateControls() {
  const m = meeting;
  // Off stage in a webinar there is nothing to mute: the buttons go away.
  const sending = Boolean(m?.self) && m.canPublish();
  $('mic-btn').hidden = !sending && Boolean(m?.self);
  $('cam-btn').hidden = !sending && Boolean(m?.self);
  const set = (button, kind, onText, offText) => {
    const hasTrack = Boolean(m?.localTrack(kind));
    const muted = !hasTrack || m.isMuted(kind);
    button.disabled = !hasTrack || !m || m.ended;
    button.textContent = muted ? offText : onText;
    button.setAttribute('aria-pressed', String(muted));
    button.classList.toggle('off', muted);
  };
  set($('mic-btn'), 'audio', 'Mute', 'Unmute');
  set($('cam-btn'), 'video', 'Stop camera', 'Start camera');
}

function initMeetingControls() {
  $('mic-btn').addEventListener('click', () => {
    meeting?.setMuted('audio', !meeting.isMuted('audio'));
    updateControls();
  });
  $('cam-btn').addEventListener('click', () => {
    meeting?.setMuted('video', !meeting.isMuted('video'));
    updateControls();
  });
  $('leave-btn').addEventListener('click', () => meeting?.leave());
  $('lobby-leave-btn').addEventListener('click', () => meeting?.leave());
  $('rejoin-btn').addEventListener('click', rejoin);
  tabs = new Tabs();
  const chat = new ChatPanel({ tabs });
  features = [
    chat,
    new PeopleControls({ chat }),
    new NotesPanel({ tabs }),
    new QaPanel({ tabs, room }),
    new PollsPanel({ tabs, room }),
    new Reactions(),
    new BreakoutsPanel({ tabs }),
    new LobbyPanel({ tabs }),
    new BroadcastControl(),
    new RecordingControl(),
    new CatchUpControl(),
    new ScreenShareControl(),
  ];
}

function initPrejoin() {
  showSection('prejoin');
  const nameInput = $('name-input');
  nameInput.value = initialName();
  if (tokenFromUrl()) nameInput.readOnly = true; // the invitation fixes the name

  preview = new MediaPreview({
    video: $('preview-video'),
    audioSelect: $('audio-select'),
    videoSelect: $('video-select'),
    onError: (err) => showError(err, 'Camera/microphone'),
  });
  preview.start();

  precheck = new PrecheckPanel({
    list: $('precheck-steps'),
    banner: $('precheck-banner'),
    button: $('precheck-btn'),
    adviceBox: $('precheck-advice'),
    getTokenFn: () => getToken(room, nameInput.value.trim() || 'Guest').catch((err) => {
      // Not only a failed check: without an invitation there is no way in, so say it up top.
      if (err.code === 'invitation_required') showError(err);
      throw err;
    }),
  });
  precheck.run();

  $('prejoin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('join-btn').disabled = true;
    precheck.cancel(); // its throw-away session must not overlap the real one
    // Only the TURN relay got through: connect through it alone (no time lost on direct
    // checks that fail); otherwise ICE picks the path the check found.
    if (precheckResult.relayOnly) PC_CONFIG.iceTransportPolicy = 'relay';
    await preview.ready; // a device switch may still be reopening the stream
    mediaConstraints = preview.constraints();
    startMeeting(nameInput.value.trim() || 'Guest', preview.takeStream());
  });
}

async function autojoin() {
  showSection('meeting');
  const { stream, error } = await openMedia(AUTOJOIN_MEDIA);
  if (error) showError(error, 'Camera/microphone');
  await startMeeting(params.get('name') || initialName() || 'Guest', stream);
}

function main() {
  initStatus();
  $('room-name').textContent = room;
  document.title = `${room} · Meeting`;
  initMeetingControls();
  window.addEventListener('pagehide', () => {
    // Tell the server now rather than waiting for the socket to time out.
    if (meeting && !meeting.ended) meeting.leave();
    stopStream(preview?.stream);
  });
  if (!room) {
    showError(new Error('No room in the address; open a link like /r/<room>.'));
    return;
  }
  if (params.get('autojoin') === '1') autojoin();
  else initPrejoin();
}

main();
