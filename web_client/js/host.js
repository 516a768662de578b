// The People tab's per-participant buttons and the raise-hand button. Hosts get mute,
// remove and, in webinars, bring on stage / back to the audience; anyone gets "Message"
// where a private message is allowed (hosts to anyone, others to hosts).
import { $, button } from './dom.js';
import { showError, showStatus } from './status.js';
import { maySend } from './roster.js';

export class PeopleControls {
  constructor({ chat }) {
    this.chat = chat;
    this.m = null;
    this.handButton = $('hand-btn');
    this.handButton.addEventListener('click', () => this.toggleHand());
  }

  attach(m) {
    this.m = m;
    m.onChange(() => this.render());
    this.render();
  }

  async toggleHand() {
    const raised = !this.m?.self?.handRaised;
    this.handButton.disabled = true;
    try {
      await this.m.request('raiseHand', { raised });
      // handRaised comes to us as well; set it now in case the event is slower
      this.m.roster.update(this.m.selfId, { handRaised: raised });
      this.m.changed();
    } catch (err) {
      showError(err, raised ? 'Could not raise your hand' : 'Could not lower your hand');
    } finally {
      this.handButton.disabled = false;
    }
  }

  render() {
    const m = this.m;
    if (!m?.self) return;
    const raised = Boolean(m.self.handRaised);
    this.handButton.hidden = m.role === 'service';
    this.handButton.textContent = raised ? '✋ Lower hand' : '✋ Raise hand';
    this.handButton.setAttribute('aria-pressed', String(raised));
    this.handButton.classList.toggle('active', raised);
    for (const p of m.participants.values()) {
      const actions = m.view.actionsOf(p.id);
      // Rebuilt only when they would differ, so an armed "Confirm" survives other changes.
      const key = [m.role, m.roomType, p.role, Boolean(p.onStage), this.chat.canMessage(p)].join();
      if (!actions || actions.dataset.key === key) continue;
      actions.dataset.key = key;
      actions.replaceChildren(...this.buttonsFor(p));
    }
  }

  buttonsFor(p) {
    const m = this.m;
    const out = [];
    if (this.chat.canMessage(p)) {
      out.push(button('Message', 'small', () => this.chat.messageTo(p.id), `Private message to ${p.name}`));
    }
    if (m.role !== 'host') return out;
    if (maySend(m.roomType, p)) {
      out.push(button('Mute', 'small', () => this.call('muteParticipant', p, { kind: 'audio' },
        `${p.name}'s microphone was muted.`), `Mute ${p.name}'s microphone`));
    }
    if (m.roomType === 'webinar' && p.role === 'attendee') {
      out.push(p.onStage
        ? button('To audience', 'small', () => this.call('demote', p), `Take ${p.name} off the stage`)
        : button('To stage', 'small', () => this.call('promote', p), `Bring ${p.name} on stage`));
    }
    out.push(this.removeButton(p));
    return out;
  }

  /** Two clicks within 4 s: no dialog (it would block automated pages), no accidents. */
  removeButton(p) {
    const b = button('Remove', 'small danger-text', null, `Remove ${p.name} from the meeting`);
    let timer = null;
    b.addEventListener('click', () => {
      if (!timer) {
        b.textContent = 'Confirm';
        b.classList.add('armed');
        timer = setTimeout(() => { timer = null; b.textContent = 'Remove'; b.classList.remove('armed'); }, 4000);
        return;
      }
      clearTimeout(timer);
      this.call('removeParticipant', p, {}, `${p.name} was removed.`);
    });
    return b;
  }

  async call(method, p, params = {}, done = '') {
    try {
      await this.m.request(method, { participantId: p.id, ...params });
      if (done) showStatus(done, 'ok', 2500);
    } catch (err) {
      showError(err, `Could not ${method === 'muteParticipant' ? 'mute' : method} ${p.name}`);
    }
  }
}
