// Recording (docs/protocol.md, `recordStart`): everyone sees "● Recording" while the room is
// recorded, whoever started it (a host, the HTTP API, auto-record), because people must know
// they are recorded; hosts start and stop it here.
import { $ } from './dom.js';
import { showError, showStatus } from './status.js';

// Stopping waits for the recorder to finish the VOD (the server allows it two minutes).
const STOP_TIMEOUT_MS = 130000;

export class RecordingControl {
  constructor() {
    this.badge = $('rec-badge');
    this.button = $('rec-btn');
    this.m = null;
    this.recording = false;
    this.busy = false;
    this.button.addEventListener('click', () => this.toggle());
  }

  attach(m, res) {
    this.m = m;
    this.busy = false;
    this.set(Boolean(res.recording), false);
    m.on('recordingChanged', (d) => this.set(Boolean(d.recording), true));
  }

  set(recording, announce) {
    const changed = recording !== this.recording;
    this.recording = recording;
    this.badge.hidden = !recording;
    this.render();
    if (announce && changed) {
      showStatus(recording ? 'This meeting is now being recorded.' : 'The recording has stopped.',
        recording ? 'warn' : 'info', 5000);
    }
  }

  render() {
    this.button.hidden = this.m?.role !== 'host';
    this.button.disabled = this.busy;
    this.button.classList.toggle('active', this.recording);
    if (this.busy) this.button.textContent = this.recording ? 'Stopping…' : 'Starting…';
    else this.button.textContent = this.recording ? 'Stop recording' : 'Start recording';
  }

  async toggle() {
    const stop = this.recording;
    this.busy = true;
    this.render();
    try {
      if (stop) {
        const { recording } = await this.m.request('recordStop', undefined, STOP_TIMEOUT_MS);
        this.set(false, false);
        const seconds = Math.round(recording?.duration || 0);
        showStatus(`Recording saved (${seconds} s).`, 'ok', 5000);
      } else {
        // One composite video of the main room: the VOD everyone is sent afterwards.
        await this.m.request('recordStart', { mode: 'composite', layout: 'grid' });
        this.set(true, false);
      }
    } catch (err) {
      showError(err, stop ? 'Could not stop the recording' : 'Could not start recording');
    } finally {
      this.busy = false;
      this.render();
    }
  }
}
