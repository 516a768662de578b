// Webinar broadcast (docs/protocol.md, `setLive`): everyone sees whether the audience gets the
// stage's media ("Live") or not yet ("Backstage"); hosts switch it. The join result does not
// say whether the room was created with a backstage, so every webinar gets the switch: ending
// the broadcast puts any webinar backstage.
import { $ } from './dom.js';
import { showError, showStatus } from './status.js';

export class BroadcastControl {
  constructor() {
    this.badge = $('live-badge');
    this.button = $('live-btn');
    this.m = null;
    this.live = true;
    this.button.addEventListener('click', () => this.toggle());
  }

  attach(m, res) {
    this.m = m;
    this.set(res.live ?? true, false);
    m.on('liveChanged', (d) => this.set(Boolean(d.live), true));
  }

  set(live, announce) {
    const changed = live !== this.live;
    this.live = live;
    const webinar = this.m.roomType === 'webinar';
    this.badge.hidden = !webinar;
    this.badge.textContent = live ? 'Live' : 'Backstage';
    this.badge.dataset.live = String(live);
    this.badge.title = live ? 'The audience sees and hears the stage.'
      : 'Not broadcasting: only the stage sees and hears each other.';
    this.button.hidden = !webinar || this.m.role !== 'host';
    this.button.textContent = live ? 'End broadcast' : 'Go live';
    this.button.classList.toggle('primary', !live);
    if (webinar && announce && changed) {
      showStatus(live ? 'The broadcast is live.' : 'The broadcast has ended.', 'info', 4000);
    }
  }

  async toggle() {
    this.button.disabled = true;
    try {
      const { live } = await this.m.request('setLive', { live: !this.live });
      this.set(live, true); // liveChanged says the same; it may come later
    } catch (err) {
      showError(err, 'Could not change the broadcast');
    } finally {
      this.button.disabled = false;
    }
  }
}
