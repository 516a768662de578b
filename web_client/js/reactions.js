// Reactions: the six emoji of docs/protocol.md; everyone's float up over the grid for ~2 s.
import { $, el, button } from './dom.js';
import { showStatus, showError } from './status.js';

export const EMOJI = ['👍', '👏', '❤️', '😂', '😮', '🎉'];
const FLOAT_MS = 2200;

export class Reactions {
  constructor() {
    this.bar = $('reactions');
    this.layer = $('reaction-layer');
    this.m = null;
    this.bar.replaceChildren(...EMOJI.map((e) => button(e, 'emoji', () => this.send(e), `React ${e}`)));
  }

  attach(m) {
    this.m = m;
    this.bar.hidden = m.role === 'service';
    m.on('reaction', (d) => this.show(d.emoji, m.person(d.participantId)?.name));
  }

  async send(emoji) {
    try {
      await this.m.request('reaction', { emoji });
    } catch (err) {
      if (err.code === 'rate_limited') showStatus('Easy there: wait a moment before reacting again.', 'warn', 2500);
      else showError(err, 'Reaction not sent');
    }
  }

  show(emoji, name) {
    if (!EMOJI.includes(emoji) || this.layer.childElementCount > 30) return;
    const item = el('div', 'float-emoji');
    item.append(el('span', 'float-glyph', emoji));
    if (name) item.append(el('span', 'float-name', name));
    item.style.left = `${10 + Math.random() * 75}%`;
    this.layer.append(item);
    setTimeout(() => item.remove(), FLOAT_MS);
  }
}
