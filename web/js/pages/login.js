// Log in, or sign up and log in. The token goes to sessionStorage only.
import { api, session } from '../api.js';
import { $, onSubmit, param, startPage } from '../ui.js';

async function logIn(email, password) {
  const { data: tok } = await api('POST', '/api/v1/auth/tokens', { body: { email, password } });
  session.set({ token: tok.token, userId: tok.userId, expiresAt: tok.expiresAt });
  const { data: u } = await api('GET', `/api/v1/users/${tok.userId}`);
  session.set({ token: tok.token, userId: tok.userId, expiresAt: tok.expiresAt, name: u.name, role: u.role });
  const next = param('next');
  location.href = next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

startPage();
onSubmit($('#login'), () => logIn($('#login-email').value.trim(), $('#login-password').value));
onSubmit($('#signup'), async ({ onWait }) => {
  const f = new FormData($('#signup'));
  const body = {
    email: f.get('email').trim(), password: f.get('password'), name: f.get('name').trim(),
    phone: f.get('phone').trim(), role: f.get('role'),
  };
  await api('POST', '/api/v1/users', { body, onWait });
  await logIn(body.email, body.password);
});
