// Where the WebSocket token comes from: an invitation link (?token=) or, in dev mode,
// POST /api/dev/token, which answers 404 in production mode.

export class TokenError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'TokenError';
    this.code = code;
  }
}

export function tokenFromUrl() {
  return new URLSearchParams(location.search).get('token');
}

/** The claims of a JWT, unverified: only to prefill the display name. */
export function tokenClaims(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

/** One identity per browser tab, so a reconnect (or reload) gets our place back. */
function devIdentity() {
  let id = sessionStorage.getItem('mediaserver.identity');
  if (!id) {
    id = `dev-${crypto.getRandomValues(new Uint32Array(2)).join('')}`;
    sessionStorage.setItem('mediaserver.identity', id);
  }
  return id;
}

export async function getToken(room, name) {
  const fromUrl = tokenFromUrl();
  if (fromUrl) return fromUrl;
  let res;
  try {
    res = await fetch('/api/dev/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ room, name, identity: devIdentity() }),
    });
  } catch {
    throw new TokenError('unreachable', 'The server cannot be reached.');
  }
  if (res.status === 404) {
    throw new TokenError('invitation_required', 'This room needs an invitation link.');
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok || !body.token) {
    throw new TokenError(body.error?.code || `http_${res.status}`,
      body.error?.message || `Could not get an access token (HTTP ${res.status}).`);
  }
  return body.token;
}
