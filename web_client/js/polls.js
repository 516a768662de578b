// Polls: hosts and presenters draft, open and close them; everyone votes once while a poll is
// open and sees the live results (docs/protocol.md, "Webinar and engagement methods").
import { $, el, button, tabMemory } from './dom.js';
import { showError } from './status.js';

const MAX_OPTIONS = 10;
const STATE_ORDER = { open: 0, draft: 1, closed: 2 };

export class PollsPanel {
  constructor({ tabs, room }) {
    this.tabs = tabs;
    this.list = $('poll-list');
    this.empty = $('poll-empty');
    this.form = $('poll-form');
    this.options = $('poll-options');
    this.votes = tabMemory(`poll-votes:${room}`); // poll id -> option index we chose
    this.polls = new Map();
    this.m = null;
    $('poll-add-option').addEventListener('click', () => this.addOption());
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.create(); });
    this.resetForm();
    tabs.onShow('polls', () => { if (this.m?.isModerator()) this.load(); }); // others' drafts
  }

  attach(m) {
    this.m = m;
    this.polls.clear();
    this.form.hidden = !m.isModerator();
    m.on('pollUpdated', (d) => {
      const before = this.polls.get(d.poll.id);
      this.polls.set(d.poll.id, d.poll);
      this.render();
      if (d.poll.state === 'open' && before?.state !== 'open') this.tabs.notify('polls');
    });
    this.load();
  }

  load() {
    this.m.request('pollList').then(({ polls }) => {
      for (const p of polls || []) this.polls.set(p.id, p);
      this.render();
    }).catch((err) => showError(err, 'Could not load the polls'));
  }

  resetForm() {
    $('poll-question').value = '';
    this.options.replaceChildren();
    this.addOption();
    this.addOption();
  }

  addOption() {
    const n = this.options.children.length;
    if (n >= MAX_OPTIONS) return;
    const input = el('input');
    input.maxLength = 200;
    input.placeholder = `Option ${n + 1}`;
    input.setAttribute('aria-label', `Option ${n + 1}`);
    this.options.append(input);
    $('poll-add-option').disabled = n + 1 >= MAX_OPTIONS;
  }

  async create() {
    const question = $('poll-question').value.trim();
    const options = [...this.options.querySelectorAll('input')].map((i) => i.value.trim()).filter(Boolean);
    if (!question || options.length < 2) {
      showError(new Error('A poll needs a question and at least two options.'));
      return;
    }
    try {
      const { poll } = await this.m.request('pollCreate', { question, options });
      this.polls.set(poll.id, poll);
      this.resetForm();
      this.render();
    } catch (err) {
      showError(err, 'Poll not created');
    }
  }

  async act(method, poll, extra = {}) {
    try {
      const res = await this.m.request(method, { pollId: poll.id, ...extra });
      this.polls.set(res.poll.id, res.poll);
      if (method === 'pollVote') this.votes.set(poll.id, extra.option);
    } catch (err) {
      if (method === 'pollVote' && err.code === 'conflict' && poll.state === 'open') {
        this.votes.set(poll.id, -1); // voted before (from another session): results only
      } else {
        showError(err, method === 'pollVote' ? 'Vote not counted' : 'Could not change the poll');
      }
    }
    this.render();
  }

  render() {
    const shown = [...this.polls.values()].sort((a, b) =>
      STATE_ORDER[a.state] - STATE_ORDER[b.state] || b.id - a.id);
    this.empty.hidden = shown.length > 0;
    this.list.replaceChildren(...shown.map((p) => this.card(p)));
  }

  card(poll) {
    const moderator = this.m.isModerator();
    const mine = this.votes.get(poll.id);
    const canVote = poll.state === 'open' && mine === undefined && this.m.role !== 'service';
    const li = el('li', `poll ${poll.state}`);
    const head = el('div', 'poll-head');
    head.append(el('span', 'poll-question', poll.question), el('span', `tag ${poll.state}`,
      { draft: 'draft', open: 'open', closed: 'closed' }[poll.state]));
    li.append(head);
    poll.options.forEach((o, i) => {
      const pct = poll.total ? Math.round((100 * o.votes) / poll.total) : 0;
      const row = el(canVote ? 'button' : 'div', 'poll-option');
      if (canVote) {
        row.type = 'button';
        row.addEventListener('click', () => this.act('pollVote', poll, { option: i }));
      }
      row.classList.toggle('chosen', mine === i);
      const bar = el('span', 'poll-bar');
      bar.style.width = `${pct}%`;
      const label = el('span', 'poll-label', o.text);
      row.append(bar, label, el('span', 'poll-count', poll.state === 'draft' ? '' : `${o.votes} · ${pct}%`));
      li.append(row);
    });
    const foot = el('div', 'poll-foot', `${poll.total} vote${poll.total === 1 ? '' : 's'}` +
      (canVote ? ' · choose one' : mine !== undefined && mine >= 0 ? ' · you voted' : ''));
    if (moderator && poll.state === 'draft') foot.append(button('Open', 'small primary', () => this.act('pollOpen', poll)));
    if (moderator && poll.state === 'open') foot.append(button('Close', 'small', () => this.act('pollClose', poll)));
    li.append(foot);
    return li;
  }
}
