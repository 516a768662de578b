// Chat: the room's messages, private messages (hosts to anyone, others to hosts) and the
// host's chat on/off switch (docs/protocol.md, "Webinar and engagement methods").
import { $, el, clockTime } from './dom.js';
import { showError } from './status.js';

export class ChatPanel {
  constructor({ tabs }) {
    this.tabs = tabs;
    this.log = $('chat-log');
    this.input = $('chat-input');
    this.to = $('chat-to');
    this.note = $('chat-note');
    this.toggle = $('chat-toggle');
    this.m = null;
    this.enabled = true;
    this.ids = new Set();
    this.sending = false;
    $('chat-form').addEventListener('submit', (e) => { e.preventDefault(); this.send(); });
    this.to.addEventListener('change', () => this.updateInput());
    this.toggle.addEventListener('click', () => this.setChat(!this.enabled));
  }

  attach(m, res) {
    this.m = m;
    this.log.replaceChildren();
    this.ids.clear();
    // The join result's settings; settingsChanged (a host's toggle) updates them later.
    this.enabled = res.settings?.chat ?? true;
    for (const msg of res.chat || []) this.add(msg);
    m.on('chat', (d) => { this.add(d.message); this.tabs.notify('chat'); });
    m.on('privateMessage', (d) => { this.addPrivate(d.message, false); this.tabs.notify('chat'); });
    m.on('settingsChanged', (d) => {
      if (typeof d.settings?.chat === 'boolean') this.setEnabled(d.settings.chat);
    });
    m.onChange(() => this.fillRecipients());
    this.fillRecipients();
    this.setEnabled(this.enabled);
  }

  /** Hosts may write privately to anyone, everyone else only to hosts. */
  canMessage(p) {
    return Boolean(this.m && p && p.id !== this.m.selfId && (this.m.role === 'host' || p.role === 'host'));
  }

  fillRecipients() {
    const current = this.to.value;
    const options = [new Option('Everyone', '')];
    for (const p of this.m.participants.values()) {
      if (this.canMessage(p)) options.push(new Option(`${p.name} (private)`, p.id));
    }
    this.to.replaceChildren(...options);
    this.to.value = options.some((o) => o.value === current) ? current : '';
    this.to.hidden = options.length < 2;
    this.updateInput();
  }

  /** Write privately to one participant: from the People list. */
  messageTo(participantId) {
    this.fillRecipients();
    this.to.value = participantId;
    this.updateInput();
    this.tabs.select('chat');
    this.input.focus();
  }

  setEnabled(enabled) {
    this.enabled = enabled;
    const host = this.m?.role === 'host';
    this.toggle.hidden = !host;
    this.toggle.textContent = enabled ? 'Turn chat off' : 'Turn chat on';
    this.toggle.classList.toggle('off', !enabled);
    this.updateInput();
  }

  updateInput() {
    const mayChat = this.enabled || this.m?.isModerator();
    const blocked = !mayChat && !this.to.value;
    this.input.disabled = blocked || this.sending;
    this.input.placeholder = this.to.value ? 'Write a private message' : 'Write a message';
    const hostsHere = this.to.options.length > 1;
    this.note.hidden = this.enabled;
    this.note.textContent = mayChat ? 'Chat is off for attendees.'
      : `The host turned the chat off.${hostsHere ? ' You can still write privately to a host.' : ''}`;
  }

  async setChat(enabled) {
    try {
      const res = await this.m.request('setChat', { enabled });
      this.setEnabled(res.settings?.chat ?? enabled);
    } catch (err) {
      showError(err, 'Could not change the chat setting');
    }
  }

  async send() {
    const text = this.input.value.trim();
    if (!text || !this.m || this.m.ended || this.sending) return;
    const to = this.to.value;
    this.sending = true;
    this.input.disabled = true;
    try {
      if (to) {
        const res = await this.m.request('privateMessage', { participantId: to, text });
        this.addPrivate(res.message, true);
      } else {
        const res = await this.m.request('chat', { text });
        this.add(res.message);
      }
      this.input.value = '';
    } catch (err) {
      if (err.code === 'chat_disabled') this.setEnabled(false);
      showError(err, 'Message not sent');
    } finally {
      this.sending = false;
      this.updateInput();
      if (!this.input.disabled) this.input.focus();
    }
  }

  add(msg) {
    if (!msg || this.ids.has(msg.id)) return; // our own message comes as result and event
    this.ids.add(msg.id);
    const mine = msg.participantId === this.m.selfId;
    this.append(el('li', mine ? 'msg mine' : 'msg'), msg.name || 'someone', msg, mine);
  }

  /** message: {from, name, to, text, ts}; mine: we sent it. */
  addPrivate(msg, mine) {
    if (!msg) return;
    const other = mine ? this.m.person(msg.to)?.name || 'someone' : msg.name || 'someone';
    const li = el('li', mine ? 'msg private mine' : 'msg private');
    this.append(li, mine ? `Private to ${other}` : `Private from ${other}`, msg, mine);
    if (!mine) li.append(this.replyButton(msg.from));
  }

  replyButton(participantId) {
    const b = el('button', 'link', 'Reply');
    b.type = 'button';
    b.addEventListener('click', () => this.messageTo(participantId));
    return b;
  }

  append(li, title, msg, mine) {
    const log = this.log;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const head = el('div', 'msg-head');
    head.append(el('span', 'msg-name', title), el('span', 'msg-time', clockTime(msg.ts)));
    li.append(head, el('div', 'msg-text', msg.text));
    log.append(li);
    if (atBottom || mine) log.scrollTop = log.scrollHeight;
  }
}
