// Q&A: ask, upvote once, open questions first by votes; hosts and presenters mark a question
// answered or dismiss it (docs/protocol.md, "Webinar and engagement methods").
import { $, el, button, tabMemory } from './dom.js';
import { showError } from './status.js';

const STATE_ORDER = { open: 0, answered: 1, dismissed: 2 };

function order(a, b) {
  // As the server's qaList: open first, most votes first, then oldest first.
  return (a.state !== 'open') - (b.state !== 'open') || STATE_ORDER[a.state] - STATE_ORDER[b.state]
    || b.votes - a.votes || a.ts - b.ts || a.id - b.id;
}

export class QaPanel {
  constructor({ tabs, room }) {
    this.tabs = tabs;
    this.list = $('qa-list');
    this.input = $('qa-input');
    this.empty = $('qa-empty');
    this.voted = tabMemory(`qa-votes:${room}`);
    this.questions = new Map();
    this.m = null;
    $('qa-form').addEventListener('submit', (e) => { e.preventDefault(); this.ask(); });
  }

  attach(m) {
    this.m = m;
    this.questions.clear();
    this.render();
    $('qa-form').hidden = m.role === 'service';
    const upsert = (d) => { this.questions.set(d.question.id, d.question); this.render(); };
    m.on('questionAdded', (d) => { upsert(d); this.tabs.notify('qa'); });
    m.on('questionUpdated', upsert);
    if (m.roomType !== 'webinar') return; // the tab is only in webinars
    m.request('qaList').then(({ questions }) => {
      for (const q of questions || []) this.questions.set(q.id, q);
      this.render();
    }).catch((err) => showError(err, 'Could not load the questions'));
  }

  async ask() {
    const text = this.input.value.trim();
    if (!text) return;
    this.input.disabled = true;
    try {
      const { question } = await this.m.request('qaAsk', { text });
      this.questions.set(question.id, question);
      this.input.value = '';
      this.render();
    } catch (err) {
      showError(err, 'Question not sent');
    } finally {
      this.input.disabled = false;
      this.input.focus();
    }
  }

  async act(method, q) {
    try {
      const { question } = await this.m.request(method, { questionId: q.id });
      this.questions.set(question.id, question);
      if (method === 'qaUpvote') this.voted.set(q.id);
    } catch (err) {
      if (method === 'qaUpvote' && err.code === 'conflict') this.voted.set(q.id); // voted before
      else showError(err, 'Could not update the question');
    }
    this.render();
  }

  render() {
    const moderator = this.m?.isModerator();
    const shown = [...this.questions.values()]
      .filter((q) => moderator || q.state !== 'dismissed').sort(order);
    this.empty.hidden = shown.length > 0;
    this.list.replaceChildren(...shown.map((q) => this.item(q, moderator)));
  }

  item(q, moderator) {
    const li = el('li', `question ${q.state}`);
    const voted = this.voted.has(q.id);
    const vote = button(`▲ ${q.votes}`, 'vote', () => this.act('qaUpvote', q),
      voted ? 'You upvoted this' : 'Upvote');
    vote.disabled = voted || q.state !== 'open' || this.m.role === 'service';
    vote.classList.toggle('voted', voted);
    const body = el('div', 'question-body');
    const meta = el('div', 'question-meta', q.name || 'someone');
    if (q.state !== 'open') meta.append(el('span', `tag ${q.state}`, q.state));
    body.append(el('div', 'question-text', q.text), meta);
    li.append(vote, body);
    if (moderator && q.state === 'open') {
      const actions = el('div', 'question-actions');
      actions.append(button('Answered', 'small', () => this.act('qaAnswer', q), 'Mark as answered'),
        button('Dismiss', 'small', () => this.act('qaDismiss', q), 'Dismiss this question'));
      li.append(actions);
    }
    return li;
  }
}
