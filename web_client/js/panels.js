// The side panel's tabs (People / Lobby / Chat / Q&A / Polls / Notes / Breakouts): which ones
// a role and room type get, switching, and a dot on a tab whose content changed out of sight.
import { $ } from './dom.js';

/** The tabs one participant gets, from role, room type and the breakout state. */
export function availableTabs(m) {
  const tabs = new Set(['people', 'chat', 'polls']);
  if (m.roomType === 'webinar') tabs.add('qa');
  if (m.role === 'host' && m.settings?.lobby) tabs.add('lobby');
  if (m.roomType !== 'webinar') {
    tabs.add('notes');
    const b = m.breakouts;
    if (m.role === 'host' || (b?.allowChoose && b.groups?.length)) tabs.add('breakouts');
  }
  return tabs;
}

export class Tabs {
  constructor() {
    this.meeting = $('meeting');
    this.buttons = new Map();
    for (const b of document.querySelectorAll('#tabs [data-tab]')) {
      this.buttons.set(b.dataset.tab, b);
      b.addEventListener('click', () => this.select(b.dataset.tab));
    }
    this.active = 'chat';
    this.showHandlers = new Map(); // tab -> [fn] called when it is shown
    $('panel-btn').addEventListener('click', () => {
      this.meeting.classList.toggle('panel-hidden');
      if (!this.meeting.classList.contains('panel-hidden')) this.select(this.active);
    });
    this.select('chat');
  }

  onShow(tab, fn) {
    if (!this.showHandlers.has(tab)) this.showHandlers.set(tab, []);
    this.showHandlers.get(tab).push(fn);
  }

  select(tab) {
    if (!this.buttons.has(tab) || this.buttons.get(tab).hidden) tab = 'chat';
    this.active = tab;
    for (const [name, b] of this.buttons) {
      const on = name === tab;
      b.setAttribute('aria-selected', String(on));
      b.classList.toggle('active', on);
      $(`panel-${name}`).hidden = !on;
    }
    this.buttons.get(tab).classList.remove('unread');
    for (const fn of this.showHandlers.get(tab) || []) fn();
  }

  /** Show only these tabs (a Set of names). */
  configure(available) {
    for (const [name, b] of this.buttons) b.hidden = !available.has(name);
    if (!available.has(this.active)) this.select('chat');
  }

  visible(tab) {
    return this.active === tab && !this.meeting.classList.contains('panel-hidden');
  }

  /** Something new in `tab`: a dot on it unless it is in view. */
  notify(tab) {
    if (!this.visible(tab)) this.buttons.get(tab)?.classList.add('unread');
  }
}
