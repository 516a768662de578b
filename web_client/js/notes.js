// Shared notes (meetings): one text for the room, saved with the version it was based on.
// A save that lost a race gets `conflict` with the current notes, shown next to ours so the
// user merges instead of losing either (docs/protocol.md, `setNotes`).
import { $, clockTime } from './dom.js';
import { showError, showStatus } from './status.js';

export class NotesPanel {
  constructor({ tabs }) {
    this.tabs = tabs;
    this.text = $('notes-text');
    this.status = $('notes-status');
    this.saveButton = $('notes-save');
    this.banner = $('notes-banner');
    this.merge = $('notes-merge');
    this.theirs = $('notes-theirs');
    this.theirsHead = $('notes-theirs-head');
    this.m = null;
    this.base = { text: '', version: 0 }; // the saved notes our edits start from
    this.latest = null; // newer notes that arrived while we had unsaved edits
    this.saving = null; // text being saved
    this.saveButton.addEventListener('click', () => this.save());
    this.text.addEventListener('input', () => this.showState());
    $('notes-compare').addEventListener('click', () => this.showMerge(this.latest));
    $('notes-use-theirs').addEventListener('click', () => {
      this.text.value = this.theirs.value;
      this.showState();
    });
    $('notes-merge-done').addEventListener('click', () => this.hideMerge());
  }

  attach(m) {
    this.m = m;
    const prev = this.base;
    const edits = this.text.value;
    const wasDirty = edits !== prev.text; // unsaved edits survive a reconnect
    this.base = { text: '', version: 0 };
    this.latest = null;
    this.banner.hidden = true;
    this.hideMerge();
    if (m.roomType === 'webinar') return;
    m.on('notesChanged', (d) => this.onRemote(d.notes));
    m.request('getNotes').then(({ notes }) => {
      if (!wasDirty || edits === notes.text) {
        this.base = notes;
        this.text.value = notes.text;
      } else if (notes.version === prev.version) {
        this.base = notes; // nobody saved meanwhile: our edits still apply
      } else {
        this.base = prev;
        this.onRemote(notes);
      }
      this.showState();
    }).catch((err) => showError(err, 'Could not load the notes'));
  }

  dirty() {
    return this.text.value !== this.base.text;
  }

  onRemote(notes) {
    if (!notes || notes.version <= this.base.version) return;
    if (this.text.value === notes.text || notes.text === this.saving) {
      this.base = notes; // ours, or the same text: nothing to merge
    } else if (!this.dirty()) {
      this.base = notes;
      this.text.value = notes.text;
      this.tabs.notify('notes');
    } else {
      this.latest = notes; // keep the base: a save now gets `conflict` rather than overwriting
      $('notes-banner-text').textContent = `${notes.author || 'Someone'} updated the notes.`;
      this.banner.hidden = false;
      this.tabs.notify('notes');
    }
    this.showState();
  }

  async save() {
    const text = this.text.value;
    this.saving = text;
    this.saveButton.disabled = true;
    try {
      const { notes } = await this.m.request('setNotes', { text, baseVersion: this.base.version });
      this.base = notes;
      this.latest = null;
      this.banner.hidden = true;
      this.hideMerge();
      showStatus('Notes saved.', 'ok', 2000);
    } catch (err) {
      if (err.code === 'conflict' && err.data?.notes) this.showMerge(err.data.notes);
      else showError(err, 'Notes not saved');
    } finally {
      this.saving = null;
      this.saveButton.disabled = false;
      this.showState();
    }
  }

  /** Their saved text next to ours; saving after this overwrites their version on purpose. */
  showMerge(notes) {
    if (!notes) return;
    this.base = notes;
    this.latest = null;
    this.banner.hidden = true;
    this.theirs.value = notes.text;
    this.theirsHead.textContent = `Saved by ${notes.author || 'someone'}, ${clockTime(notes.ts)}`;
    this.merge.hidden = false;
    $('meeting').classList.add('merging');
    this.tabs.select('notes');
  }

  hideMerge() {
    this.merge.hidden = true;
    $('meeting').classList.remove('merging');
  }

  showState() {
    const b = this.base;
    const saved = b.version ? `Version ${b.version}${b.author ? ` by ${b.author}` : ''} ${clockTime(b.ts)}` : 'Not saved yet';
    this.status.textContent = this.dirty() ? `Unsaved changes · ${saved}` : saved;
    this.status.classList.toggle('dirty', this.dirty());
  }
}
