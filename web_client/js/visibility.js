// Tells the server whether this tab is visible (setVisibility, docs/protocol.md), for the
// analytics' visibleSeconds (docs/analytics.md): once after each join, then at each change.
let send = null;

document.addEventListener('visibilitychange', () => {
  send?.(document.visibilityState === 'visible');
});

/** After a join: `request(method, params)` is the meeting's current socket. */
export function reportVisibility(request) {
  send = (visible) => request('setVisibility', { visible }).catch(() => {});
  send(document.visibilityState === 'visible');
}
