/** Users (admin): add with a role and an optional label selector, remove, reset password, end sessions. */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { Role, UserView } from '../../../src/protocol/operator-api.ts';
import { api } from '../api.ts';
import { ErrorBox, Labels, LoadedTable, Section, Time, useAction, useLoad } from '../components.tsx';
import { parseLabels } from '../labels.ts';
import { useCan, useUser } from '../session.ts';

export function UsersPage(): JSX.Element {
  const admin = useCan('admin');
  const me = useUser();
  const list = useLoad(() => api<{ users: UserView[] }>('GET', '/users'), []);
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [selector, setSelector] = useState('');
  const [password, setPassword] = useState('');
  const [shown, setShown] = useState<{ name: string; password: string } | null>(null);
  const act = useAction();
  if (!admin) {
    return (
      <>
        <h1>Users</h1>
        <p>Only an admin manages users.</p>
      </>
    );
  }
  const add = (e: SubmitEvent): void => {
    e.preventDefault();
    const sel = parseLabels(selector);
    const bad = name.trim() === '' ? 'Name is required' : sel.error;
    if (bad) {
      void act.run(() => Promise.reject(new Error(bad)));
      return;
    }
    void act
      .run(async () => {
        const r = await api<{ user: UserView; password?: string }>('POST', '/users', { name: name.trim(), role, ...(role === 'operator' && Object.keys(sel.labels).length > 0 ? { selector: sel.labels } : {}), ...(password ? { password } : {}) });
        setShown(r.password ? { name: r.user.name, password: r.password } : null);
        setName('');
        setPassword('');
        setSelector('');
      })
      .then(list.reload);
  };
  const remove = (u: UserView): void => {
    if (!window.confirm(`Remove user ${u.name}? Their sessions end.`)) return;
    void act.run(() => api('DELETE', `/users/${encodeURIComponent(u.name)}`)).then(list.reload);
  };
  const resetPassword = (u: UserView): void => {
    if (!window.confirm(`Make a new password for ${u.name}? The old one stops working.`)) return;
    void act.run(async () => {
      const r = await api<{ password?: string }>('POST', `/users/${encodeURIComponent(u.name)}/password`);
      setShown(r.password ? { name: u.name, password: r.password } : null);
    });
  };
  const revoke = (u: UserView): void => void act.run(() => api('POST', `/users/${encodeURIComponent(u.name)}/revoke`)).then(list.reload);
  return (
    <>
      <h1>Users</h1>
      <ErrorBox error={act.error} />
      {shown ? (
        <div class="notice" role="status" data-testid="new-password">
          <p>Password for {shown.name}. Copy it now: it is not shown again.</p>
          <p class="secret" data-testid="new-password-value">
            {shown.password}
          </p>
        </div>
      ) : null}
      <Section title="Add a user">
        <form onSubmit={add} class="filters" data-testid="user-form" noValidate>
          <div class="field">
            <label for="u-name">Name</label>
            <input id="u-name" autocomplete="off" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="u-role">Role</label>
            <select id="u-role" value={role} onChange={(e) => setRole(e.currentTarget.value as Role)}>
              <option value="viewer">viewer (read only)</option>
              <option value="operator">operator (jobs and changes)</option>
              <option value="admin">admin (everything)</option>
            </select>
          </div>
          {role === 'operator' ? (
            <div class="field">
              <label for="u-selector">Limited to hosts with labels (optional)</label>
              <input id="u-selector" placeholder="env=staging" value={selector} onInput={(e) => setSelector(e.currentTarget.value)} />
            </div>
          ) : null}
          <div class="field">
            <label for="u-password">Password (empty: one is made up)</label>
            <input id="u-password" type="password" autocomplete="new-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
          </div>
          <button type="submit" class="primary" disabled={act.busy} data-testid="user-add">
            Add user
          </button>
        </form>
      </Section>
      <Section title="Users">
        <LoadedTable
          from={list}
          testid="users-table"
          rows={(d) => d.users}
          rowKey={(u) => u.name}
          rowTestid={(u) => `user-row-${u.name}`}
          empty="No users."
          columns={[
            { head: 'Name', cell: (u) => u.name },
            { head: 'Role', cell: (u) => u.role },
            { head: 'Hosts', cell: (u) => (u.selector && Object.keys(u.selector).length > 0 ? <Labels labels={u.selector} /> : 'all') },
            { head: 'Created', cell: (u) => <Time at={u.created_at} /> },
            {
              head: 'Actions',
              cell: (u) => (
                <div class="buttons">
                  <button type="button" onClick={() => resetPassword(u)} aria-label={`New password for ${u.name}`}>
                    New password
                  </button>
                  <button type="button" onClick={() => revoke(u)} aria-label={`End sessions of ${u.name}`}>
                    End sessions
                  </button>
                  {u.name !== me.name ? (
                    <button type="button" class="danger" onClick={() => remove(u)} aria-label={`Remove user ${u.name}`}>
                      Remove
                    </button>
                  ) : null}
                </div>
              ),
            },
          ]}
        />
      </Section>
      <p class="muted small">An operator limited to labels sees and changes only hosts that carry all of them.</p>
    </>
  );
}
