// Screen share (docs/protocol.md, `publish` `sources`): the "Share screen" button for whoever
// may publish here. getDisplayMedia's video goes out on the publish connection as a track of
// its own (publisher.js shareScreen); ending it in the browser's own "Stop sharing" bar, or
// here, unpublishes it. Others show it large (view.js setScreen).
import { $ } from './dom.js';
import { showError, showStatus } from './status.js';

// Up to 1080p: a larger screen is scaled down by the capturer, never by the encoder.
const DISPLAY_MEDIA = {
  video: { width: { max: 1920 }, height: { max: 1080 }, frameRate: { max: 15 } },
  audio: false,
};

export class ScreenShareControl {
  constructor() {
    this.button = $('screen-btn');
    this.m = null;
    this.track = null; // our capture while we share
    this.publisher = null; // the connection it went out on
    this.busy = false;
    this.button.addEventListener('click', () => (this.track ? this.stop() : this.start()));
  }

  attach(m) {
    this.release(); // a previous session's share ended with it
    this.m = m;
    m.onChange(() => this.follow());
    m.on('close', () => this.release());
    this.render();
  }

  /** Sharing needs the right to publish and the connection it started on. */
  follow() {
    const m = this.m;
    if (this.track && !this.busy && (!m.canPublish() || m.publisher !== this.publisher
      || !this.publisher.screen)) {
      this.release(); // demoted or moved: the server already unpublished it
    }
    this.render();
  }

  render() {
    const m = this.m;
    const canShare = Boolean(m?.self) && !m.ended && m.canPublish()
      && Boolean(navigator.mediaDevices?.getDisplayMedia);
    this.button.hidden = !canShare && !this.track;
    this.button.disabled = this.busy;
    this.button.textContent = this.track ? 'Stop sharing' : 'Share screen';
    this.button.setAttribute('aria-pressed', String(Boolean(this.track)));
    this.button.classList.toggle('active', Boolean(this.track));
  }

  async start() {
    const m = this.m;
    this.busy = true;
    this.render();
    let track = null;
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia(DISPLAY_MEDIA);
      track = stream.getVideoTracks()[0];
      if (!m.publisher) await m.startPublishing();
      const pub = m.publisher;
      if (!pub || m.ended || m !== this.m) throw new Error('Not connected for sending.');
      this.track = track;
      this.publisher = pub;
      // The browser's own "Stop sharing" bar ends the track.
      track.addEventListener('ended', () => { if (this.track === track) this.stop(); });
      if (!(await pub.shareScreen(track))) this.release();
      else showStatus('You are sharing your screen.', 'ok', 3000);
    } catch (err) {
      if (this.track === track) this.release();
      track?.stop();
      // Cancelling the browser's picker is a choice, not a failure.
      if (err.name !== 'NotAllowedError') showError(err, 'Could not share your screen');
    } finally {
      this.busy = false;
      this.render();
    }
  }

  async stop() {
    const pub = this.publisher;
    this.release();
    try {
      await pub?.stopScreen();
    } catch (err) {
      showError(err, 'Could not stop sharing');
    }
  }

  /** Stop capturing (the browser's sharing indicator goes away). */
  release() {
    this.track?.stop();
    this.track = null;
    this.publisher = null;
    this.render();
  }
}
