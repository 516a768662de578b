// The visible status line. Every error the user should know about goes through showError, so it
// is never only in the console (and tests find it in window.__meeting.lastError).
import { state } from './state.js';

const FRIENDLY = {
  token_missing: 'This room needs an invitation link.',
  invitation_required: 'This room needs an invitation link.',
  token_invalid: 'This invitation link is not valid for this room.',
  token_expired: 'This invitation link has expired; ask for a new one.',
  forbidden: 'You are not allowed to do that in this room.',
  rate_limited: 'Too many requests; please wait a moment.',
  removed: 'A host removed you from the meeting.',
  refused: 'A host declined your request to join this meeting.',
  chat_disabled: 'The host turned the chat off.',
  conflict: 'That was already done, or someone changed it first.',
  already_joined: 'You are already in this room in another tab or window.',
  NotAllowedError: 'Permission to use the camera/microphone was denied.',
  NotFoundError: 'No camera or microphone was found.',
  NotReadableError: 'The camera or microphone is in use by another application.',
  OverconstrainedError: 'The selected camera or microphone is not available.',
};

let clearTimer = null;

// DOMException.code is a legacy number, so only string codes are ours (or the server's).
export function errorCode(err) {
  if (typeof err?.code === 'string') return err.code;
  return err?.name || 'error';
}

export function describeError(err) {
  return FRIENDLY[errorCode(err)] || err?.message || String(err);
}

/** kind: 'info' | 'ok' | 'warn' | 'error'. Non-errors fade after `timeout` ms if given. */
export function showStatus(text, kind = 'info', timeout = 0) {
  const box = document.getElementById('status');
  if (!box) return;
  clearTimeout(clearTimer);
  document.getElementById('status-text').textContent = text;
  box.dataset.kind = kind;
  box.hidden = !text;
  if (timeout) clearTimer = setTimeout(clearStatus, timeout);
}

export function clearStatus() {
  const box = document.getElementById('status');
  if (box) box.hidden = true;
}

export function showError(err, context = '') {
  const text = context ? `${context}: ${describeError(err)}` : describeError(err);
  state.lastError = { code: errorCode(err), message: text };
  console.error(context || 'error', err);
  showStatus(text, 'error');
}

export function initStatus() {
  document.getElementById('status-close')?.addEventListener('click', clearStatus);
}
