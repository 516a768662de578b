// The page's session state in one place: the meeting writes it, the roster shares its
// participant map and the status line reads `lastError`; automated tests read it all through
// window.__meeting.
export const state = {
  joined: false,
  joins: 0, // completed joins of this page: a reconnect makes it grow
  resumes: 0, // sockets replaced with the connections kept (a network change, netchange.js)
  network: [], // [ms since load, what] of the last network recovery steps (netchange.js)
  sessionTokenExpires: null, // exp (s) of the newest token the server gave us to come back
  waiting: false, // in a lobby room, until a host admits us
  selfId: null,
  roomType: null, // 'meeting' | 'webinar', from the join result
  role: null, // our role: 'host' | 'presenter' | 'attendee' | 'service'
  onStage: false, // webinar attendees publish only while on stage
  groupId: null, // breakout group our media is in; null: the main room
  participants: new Map(), // remote participants only (like the `join` result): id -> {id, name, role}
  publishPc: null,
  subscribePc: null,
  trackViews: {}, // remote video trackId -> shown (true) or hidden, as the server was told
  lastError: null, // {code, message} of the last error shown in the status line
  activeSpeaker: null, // participant id of the room's (or group's) active speaker, or null
};

window.__meeting = state;
