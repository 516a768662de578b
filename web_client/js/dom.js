// Small DOM helpers shared by the meeting's views and panels.

export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A button that runs onClick; a rejected promise from it goes to onError. */
export function button(text, className, onClick, title) {
  const b = el('button', className, text);
  b.type = 'button';
  if (title) { b.title = title; b.setAttribute('aria-label', title); }
  if (onClick) b.addEventListener('click', onClick);
  return b;
}

export function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/);
  return (parts[0][0] + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
}

export function clockTime(ts) {
  return ts ? new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
}

/**
 * Per-tab memory (votes cast, ...) that survives a reconnect or reload of this tab; the
 * server does not tell which questions or polls we voted on.
 */
export function tabMemory(key) {
  const read = () => {
    try { return JSON.parse(sessionStorage.getItem(key) || '{}'); } catch { return {}; }
  };
  return {
    get: (k) => read()[k],
    has: (k) => read()[k] !== undefined,
    set: (k, v = true) => sessionStorage.setItem(key, JSON.stringify({ ...read(), [k]: v })),
  };
}
