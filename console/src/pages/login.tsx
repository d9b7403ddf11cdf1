/** The login page: name and password, the server's answer (wrong password, throttled) shown as it says it. */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { SessionUser } from '../../../src/protocol/operator-api.ts';
import { api, ApiError } from '../api.ts';

export function LoginPage(props: { onLogin: (s: { user: SessionUser; csrf: string }) => void }): JSX.Element {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => {
    document.title = 'Log in · TuxSec';
    first.current?.focus();
  }, []);
  const submit = async (e: SubmitEvent): Promise<void> => {
    e.preventDefault();
    if (name === '' || password === '') {
      setError('Enter your user name and password.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      props.onLogin(await api<{ user: SessionUser; csrf: string }>('POST', '/session', { name, password }));
    } catch (err) {
      const msg = err instanceof ApiError ? err.message : String(err);
      setError(err instanceof ApiError && err.status === 429 ? `Too many attempts: ${msg}` : msg);
      setPassword('');
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="login">
      <h1>TuxSec console</h1>
      <form onSubmit={(e) => void submit(e)} data-testid="login-form" noValidate>
        {error !== null ? (
          <div class="error" role="alert" data-testid="login-error">
            {error}
          </div>
        ) : null}
        <div class="field">
          <label for="login-name">User name</label>
          <input id="login-name" name="username" autocomplete="username" ref={first} value={name} onInput={(e) => setName(e.currentTarget.value)} required />
        </div>
        <div class="field">
          <label for="login-password">Password</label>
          <input id="login-password" name="password" type="password" autocomplete="current-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} required />
        </div>
        <div class="buttons">
          <button type="submit" class="primary" disabled={busy} data-testid="login-submit">
            {busy ? 'Logging in…' : 'Log in'}
          </button>
        </div>
      </form>
    </main>
  );
}
