/** The audit log: filters, the entries, and CSV / JSON lines downloads of the same filter. */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { api, query } from '../api.ts';
import { LoadedTable, Section, Time, useLoad } from '../components.tsx';

interface Entry {
  id: number | string;
  at: string;
  actor: string;
  action: string;
  agents: string[];
  params: unknown;
  result: string;
}

interface Filter {
  actor: string;
  action: string;
  agent: string;
  since: string;
  until: string;
}

/** A datetime-local value (the browser's zone) as an ISO time; '' stays ''. */
const iso = (v: string): string => (v === '' ? '' : new Date(v).toISOString());

export function AuditPage(): JSX.Element {
  const [form, setForm] = useState<Filter>({ actor: '', action: '', agent: '', since: '', until: '' });
  const [filter, setFilter] = useState<Filter>(form);
  const q = { actor: filter.actor, action: filter.action, agent: filter.agent, since: iso(filter.since), until: iso(filter.until) };
  const list = useLoad(() => api<{ entries: Entry[] }>('GET', `/audit${query({ ...q, limit: 500, format: 'json' })}`), [JSON.stringify(filter)]);
  const field = (k: keyof Filter, label: string, type: 'text' | 'datetime-local' = 'text'): JSX.Element => (
    <div class="field">
      <label for={`au-${k}`}>{label}</label>
      {type === 'text' ? (
        <input id={`au-${k}`} type="text" value={form[k]} onInput={(e) => setForm({ ...form, [k]: e.currentTarget.value })} />
      ) : (
        <input id={`au-${k}`} type="datetime-local" value={form[k]} onInput={(e) => setForm({ ...form, [k]: e.currentTarget.value })} />
      )}
    </div>
  );
  return (
    <>
      <h1>Audit</h1>
      <Section title="Filter">
        <form
          class="filters"
          onSubmit={(e) => {
            e.preventDefault();
            setFilter(form);
          }}
          data-testid="audit-filters"
        >
          {field('actor', 'Who')}
          {field('action', 'Action')}
          {field('agent', 'Agent id')}
          {field('since', 'Since', 'datetime-local')}
          {field('until', 'Until', 'datetime-local')}
          <button type="submit" class="primary">
            Filter
          </button>
        </form>
        <p class="buttons">
          <a href={`/api/v1/audit${query({ ...q, format: 'csv' })}`} download="tuxsec-audit.csv" data-testid="audit-export-csv">
            Download CSV
          </a>
          <a href={`/api/v1/audit${query({ ...q, format: 'jsonl' })}`} download="tuxsec-audit.jsonl" data-testid="audit-export-jsonl">
            Download JSON lines
          </a>
        </p>
      </Section>
      <Section title="Entries">
        <LoadedTable
          from={list}
          testid="audit-table"
          rows={(d) => d.entries}
          rowKey={(e) => String(e.id)}
          empty="No entries match."
          columns={[
            { head: 'When', cell: (e) => <Time at={e.at} /> },
            { head: 'Who', cell: (e) => e.actor },
            { head: 'Action', cell: (e) => e.action },
            { head: 'Hosts', class: 'small', cell: (e) => (e.agents ?? []).map((a) => a.slice(0, 8)).join(', ') },
            { head: 'Parameters', cell: (e) => <code class="small">{JSON.stringify(e.params)}</code> },
            { head: 'Result', cell: (e) => e.result },
          ]}
        />
      </Section>
    </>
  );
}
