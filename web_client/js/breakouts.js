// Breakout groups (docs/protocol.md, "Breakout groups"). Hosts: create, assign by hand or
// automatically, let people choose, open, broadcast, set a timer, close and visit. Everyone:
// the group they are in and the countdown above the stage, the host's broadcasts, and a group
// chooser when allowed. Media moves are handled by Meeting.onMoved.
import { $, el, button } from './dom.js';
import { showError, showStatus } from './status.js';

const EMPTY = { open: false, allowChoose: false, endsAt: null, groups: [], assignments: {} };
const MESSAGE_MS = 60000;

function countdown(endsAt) {
  const left = Math.max(0, Math.round((endsAt - Date.now()) / 1000));
  return `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
}

export class BreakoutsPanel {
  constructor({ tabs }) {
    this.tabs = tabs;
    this.m = null;
    this.keys = {}; // what the dynamic lists were last built from
    this.wasOpen = false;
    this.closedGroups = null; // the groups as they were when closed: no "will join" hints then
    this.messageTimer = null;
    const on = (id, fn) => $(id).addEventListener('click', fn);
    on('bo-create', () => this.call('breakoutCreate', { count: Number($('bo-count').value) || 1 }));
    on('bo-auto', () => this.call('breakoutAuto'));
    on('bo-open', () => this.call('breakoutOpen'));
    on('bo-close', () => this.call('breakoutClose'));
    on('bo-return', () => this.call('breakoutVisit', { groupId: null }));
    on('bo-timer-set', () => this.call('breakoutTimer',
      { seconds: Math.round(60 * Math.max(0, Number($('bo-minutes').value) || 0)) }));
    on('bo-timer-clear', () => this.call('breakoutTimer', { seconds: 0 }));
    on('bo-msg-close', () => this.hideMessage());
    on('bo-choose-btn', () => { $('meeting').classList.remove('panel-hidden'); this.tabs.select('breakouts'); });
    $('bo-allow').addEventListener('change', (e) => this.call('breakoutAllowChoose', { allowed: e.target.checked }));
    $('bo-broadcast-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const input = $('bo-broadcast-text');
      const text = input.value.trim();
      if (text && await this.call('breakoutBroadcast', { text })) input.value = '';
    });
    setInterval(() => this.tick(), 1000);
  }

  attach(m) {
    this.m = m;
    this.keys = {};
    m.on('breakoutMessage', (d) => this.showMessage(d));
    m.onChange(() => this.render());
    this.render();
  }

  get b() {
    return { ...EMPTY, ...this.m?.breakouts };
  }

  groupName(id) {
    return this.b.groups.find((g) => g.id === id)?.name || 'a group';
  }

  /** A host (or chooser) request; its result is also broadcast as breakoutsChanged. */
  async call(method, params) {
    try {
      const res = await this.m.request(method, params);
      if (res.breakouts) { this.m.breakouts = res.breakouts; this.m.changed(); }
      return true;
    } catch (err) {
      showError(err, 'Breakout groups');
      this.render(); // e.g. put a checkbox back
      return false;
    }
  }

  render() {
    const m = this.m;
    if (!m?.self) return;
    const b = this.b;
    const host = m.role === 'host';
    const has = b.groups.length > 0;
    $('bo-host').hidden = !host;
    if (host) {
      $('bo-create').disabled = b.open;
      $('bo-count').disabled = b.open;
      $('bo-manage').hidden = !has;
      $('bo-allow').checked = b.allowChoose;
      $('bo-open').hidden = b.open;
      $('bo-close').hidden = !b.open;
      $('bo-return').hidden = m.groupId === null;
      $('bo-timer-clear').hidden = !b.endsAt;
      this.renderGroups(b);
      this.renderAssignments(b);
    }
    const choosing = !host && b.allowChoose && has;
    $('bo-choose').hidden = !choosing;
    if (choosing) this.renderChooser(b);
    $('bo-none').hidden = host || choosing;
    this.renderBar(b);
  }

  /** Rebuild a list only when what it shows changed: no flicker, no lost focus. */
  changedKey(name, value) {
    const key = JSON.stringify(value);
    if (this.keys[name] === key) return false;
    this.keys[name] = key;
    return true;
  }

  renderGroups(b) {
    if (!this.changedKey('groups', [b, this.m.groupId])) return;
    const counts = {};
    for (const g of Object.values(b.assignments)) counts[g] = (counts[g] || 0) + 1;
    $('bo-groups').replaceChildren(...b.groups.map((g) => {
      const li = el('li', 'bo-group');
      li.append(el('span', 'name', g.name), el('span', 'role', `${counts[g.id] || 0} assigned`));
      if (this.m.groupId === g.id) li.append(el('span', 'tag open', 'you are here'));
      else if (b.open) li.append(button('Visit', 'small', () => this.call('breakoutVisit', { groupId: g.id }), `Visit ${g.name}`));
      return li;
    }));
  }

  renderAssignments(b) {
    const people = [this.m.self, ...this.m.participants.values()].filter((p) => p.role !== 'service');
    const names = people.map((p) => [p.id, p.name]);
    if (!this.changedKey('assign', [b.groups, b.assignments, names])) return;
    $('bo-assign').replaceChildren(...people.map((p) => {
      const li = el('li', 'bo-assign-row');
      const select = el('select');
      select.setAttribute('aria-label', `Group of ${p.name}`);
      select.append(new Option('Unassigned', ''), ...b.groups.map((g) => new Option(g.name, g.id)));
      select.value = b.assignments[p.id] || '';
      select.addEventListener('change', () => this.call('breakoutAssign',
        { participantId: p.id, groupId: select.value || null }));
      li.append(el('span', 'name', p.id === this.m.selfId ? `${p.name} (you)` : p.name), select);
      return li;
    }));
  }

  renderChooser(b) {
    const mine = b.assignments[this.m.selfId];
    if (!this.changedKey('choose', [b.groups, mine])) return;
    $('bo-choose-list').replaceChildren(...b.groups.map((g) => {
      const chosen = g.id === mine;
      const btn = button(chosen ? `${g.name} ✓` : g.name, chosen ? 'chosen' : '',
        () => this.call('breakoutChoose', { groupId: g.id }), `Join ${g.name}`);
      btn.disabled = chosen;
      return btn;
    }));
  }

  /** Above the stage, for everyone: where we are, the countdown, the chooser. */
  renderBar(b) {
    const m = this.m;
    const mine = b.assignments[m.selfId];
    const groupsKey = JSON.stringify(b.groups);
    if (this.wasOpen && !b.open) {
      this.closedGroups = groupsKey;
      this.hideMessage(); // it was for the groups
    }
    this.wasOpen = b.open;
    const upcoming = b.groups.length > 0 && groupsKey !== this.closedGroups;
    let where = '';
    if (m.groupId) where = `You are in ${this.groupName(m.groupId)}`;
    else if (b.open) where = 'Breakout groups are open · you are in the main room';
    else if (upcoming && mine) where = `You will join ${this.groupName(mine)} when the groups open`;
    else if (upcoming && (b.allowChoose || m.role === 'host')) where = 'Breakout groups are ready';
    $('breakout-bar').hidden = !where && !b.endsAt;
    $('bo-where').textContent = where;
    $('bo-choose-btn').hidden = !(b.allowChoose && b.groups.length && m.role !== 'host');
    this.tick();
  }

  tick() {
    const endsAt = this.m?.breakouts?.endsAt;
    const box = $('bo-countdown');
    box.hidden = !endsAt;
    if (endsAt) {
      box.textContent = endsAt > Date.now() ? `${countdown(endsAt)} left` : 'Time is up';
      box.classList.toggle('urgent', endsAt - Date.now() < 60000);
    }
  }

  showMessage({ text, name }) {
    $('bo-msg-from').textContent = name ? `Message from ${name}` : 'Message from the host';
    $('bo-msg-text').textContent = text;
    $('breakout-message').hidden = false;
    clearTimeout(this.messageTimer);
    this.messageTimer = setTimeout(() => this.hideMessage(), MESSAGE_MS);
    if (this.m?.role === 'host') showStatus('Message sent to everyone.', 'ok', 2000);
  }

  hideMessage() {
    $('breakout-message').hidden = true;
  }
}
