// The lobby (docs/protocol.md, "Lobby"). A waiting attendee waits on the same socket until a
// host decides; hosts see who waits, with a count on the tab, and admit or refuse them.
import { $, el, button } from './dom.js';
import { SignalingError } from './signaling.js';
import { showError, showStatus } from './status.js';

/**
 * Resolves when a host admits us (then `join` again); rejects with code `refused` when a host
 * refuses (the server then closes the socket with 4403), or with the close's error.
 */
export function admission(sig) {
  return new Promise((resolve, reject) => {
    const offs = [];
    const settle = (fn, value) => { offs.forEach((off) => off()); fn(value); };
    offs.push(sig.on('admitted', () => settle(resolve)));
    offs.push(sig.on('refused', () => settle(reject,
      new SignalingError('refused', 'The host did not let you in.', 'join'))));
    offs.push(sig.on('close', (e) => settle(reject, e.error)));
  });
}

export class LobbyPanel {
  constructor({ tabs }) {
    this.tabs = tabs;
    this.list = $('lobby-list');
    this.count = $('lobby-count');
    this.empty = $('lobby-empty');
    this.waiting = new Map(); // participant id -> {id, name, role}
    this.m = null;
  }

  attach(m) {
    this.m = m;
    this.waiting.clear();
    this.render();
    if (m.role !== 'host' || !m.settings.lobby) return; // only hosts are told who waits
    m.on('lobbyRequest', ({ participant }) => {
      this.waiting.set(participant.id, participant);
      this.render();
      this.tabs.notify('lobby');
      showStatus(`${participant.name} is waiting in the lobby.`, 'info', 5000);
    });
    m.on('lobbyLeft', (d) => this.drop(d.participantId));
    // Another host's admit is not announced to us, but the admitted one joining is.
    m.on('participantJoined', (d) => this.drop(d.participant.id));
    m.request('lobbyList').then(({ waiting }) => {
      for (const p of waiting || []) this.waiting.set(p.id, p);
      this.render();
    }).catch((err) => showError(err, 'Could not load the lobby'));
  }

  drop(id) {
    if (this.waiting.delete(id)) this.render();
  }

  async decide(method, p, row) {
    for (const b of row.querySelectorAll('button')) b.disabled = true;
    try {
      await this.m.request(method, { participantId: p.id });
      showStatus(method === 'admit' ? `${p.name} was let in.` : `${p.name} was refused.`, 'ok', 2500);
    } catch (err) {
      if (err.code !== 'not_found') {
        showError(err, `Could not ${method} ${p.name}`);
        for (const b of row.querySelectorAll('button')) b.disabled = false;
        return;
      }
      // Another host decided first, or they gave up.
      showStatus(`${p.name} is no longer waiting.`, 'info', 3000);
    }
    this.drop(p.id);
  }

  render() {
    const people = [...this.waiting.values()];
    this.count.textContent = String(people.length);
    this.count.classList.toggle('alert', people.length > 0);
    this.empty.hidden = people.length > 0;
    this.list.replaceChildren(...people.map((p) => {
      const row = el('li', 'lobby-row');
      row.dataset.participantId = p.id;
      row.append(el('span', 'name', p.name),
        button('Admit', 'small primary', () => this.decide('admit', p, row), `Let ${p.name} in`),
        button('Refuse', 'small danger-text', () => this.decide('refuse', p, row), `Refuse ${p.name}`));
      return row;
    }));
  }
}
