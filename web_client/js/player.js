// Plays a recording's HLS playlist: live with DVR (seek back, jump to live) while the event
// runs, VOD afterwards. hls.js comes from the npm registry at setup (web_client/vendor/).
// The page is opened as /play?src=<playlist URL with its grant>.

const video = document.getElementById('video');
const statusLine = document.getElementById('player-status');
const liveState = document.getElementById('live-state');
const position = document.getElementById('position');
const src = new URLSearchParams(location.search).get('src');

// For automated tests: what the player did.
window.__player = { errors: [], live: false, ready: false };

function fail(message) {
  window.__player.errors.push(message);
  statusLine.textContent = message;
}

function liveEdge() {
  const end = video.seekable.length ? video.seekable.end(video.seekable.length - 1) : 0;
  return hls && hls.liveSyncPosition != null ? hls.liveSyncPosition : end;
}

let hls = null;
if (!src) {
  fail('No recording given (open this page with ?src=<playlist link>).');
} else if (window.Hls && window.Hls.isSupported()) {
  // A DVR window: keep the whole event seekable; start at the live edge for a live event.
  hls = new window.Hls({ liveDurationInfinity: true, backBufferLength: Infinity });
  hls.on(window.Hls.Events.MANIFEST_PARSED, () => { window.__player.ready = true; video.play(); });
  hls.on(window.Hls.Events.LEVEL_LOADED, (_, data) => {
    window.__player.live = data.details.live;
    liveState.dataset.live = String(data.details.live);
    liveState.textContent = data.details.live ? '● LIVE' : 'Recording';
  });
  hls.on(window.Hls.Events.ERROR, (_, data) => {
    if (data.fatal) fail(`Playback error: ${data.details}`);
  });
  hls.loadSource(src);
  hls.attachMedia(video);
} else if (video.canPlayType('application/vnd.apple.mpegurl')) {
  video.src = src; // Safari plays HLS natively
} else {
  fail('This browser cannot play HLS.');
}

document.getElementById('back-btn').addEventListener('click', () => {
  video.currentTime = Math.max(video.seekable.length ? video.seekable.start(0) : 0,
    video.currentTime - 10);
});
document.getElementById('live-btn').addEventListener('click', () => {
  video.currentTime = liveEdge();
  video.play();
});
video.addEventListener('error', () => fail(`Media error ${video.error?.code ?? ''}`));
video.addEventListener('timeupdate', () => {
  position.textContent = `${video.currentTime.toFixed(1)} s`;
});
window.__player.back = () => document.getElementById('back-btn').click();
window.__player.toLive = () => document.getElementById('live-btn').click();
