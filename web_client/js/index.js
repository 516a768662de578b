// Landing page: pick a room and a name, then go to /r/<room>?name=<name>.
const form = document.getElementById('start-form');
const roomInput = document.getElementById('room-input');
const nameInput = document.getElementById('name-input');

nameInput.value = localStorage.getItem('displayName') || '';
roomInput.placeholder = `room-${Math.random().toString(36).slice(2, 8)}`;

form.addEventListener('submit', (e) => {
  e.preventDefault();
  // Spaces would make an awkward link; everything else is left to the server to accept.
  const room = (roomInput.value.trim() || roomInput.placeholder).replace(/\s+/g, '-');
  const name = nameInput.value.trim();
  if (name) localStorage.setItem('displayName', name);
  const query = name ? `?name=${encodeURIComponent(name)}` : '';
  location.href = `/r/${encodeURIComponent(room)}${query}`;
});
