/**
 * `tuxsec-server templates ...` and `tuxsec-server firewall ...`: firewall templates (create from a
 * YAML or JSON file, list, show, delete, preview and apply on hosts with per-host results) and
 * firewall drift (check, list drifted hosts, accept a host's firewall as its baseline).
 */
import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import YAML from 'yaml';
import { FINAL_JOB_STATUSES, type BatchView, type JobView, type TargetInput, type TemplateView } from '../protocol/operator-api.ts';
import type { OperatorClient } from './operator-client.ts';

/** What main.ts lends: its option set, client runner, printer and argument checks. */
export interface CliKit<O> {
  common(cmd: Command): Command;
  withClient(opts: O, fn: (c: OperatorClient) => Promise<number | void>): Promise<void>;
  out(opts: O, data: unknown, human: () => string): void;
  t(v: unknown): string;
  table(rows: string[][]): string;
  labelWords(words: string[]): { set: Record<string, string> };
  positiveInt(name: string): (v: string) => number;
  usage(message: string): Error;
  /** Polls a batch until every host's job finished or `seconds` passed. */
  waitBatch(c: OperatorClient, id: string, seconds: number): Promise<BatchView>;
}

/** Largest template file read: far above any template the server accepts. */
const MAX_TEMPLATE_FILE = 1024 * 1024;

interface TargetOpts {
  agent: string[];
  label: string[];
  wait?: number;
  permanent?: boolean;
  expires?: number;
}

const collect = (v: string, acc: string[]): string[] => [...acc, v];

function targetOptions(cmd: Command, kit: CliKit<unknown>): Command {
  return cmd
    .option('--agent <id>', 'a host by agent id; repeatable', collect, [] as string[])
    .option('--label <key=value>', 'hosts carrying this label; repeatable (all must match)', collect, [] as string[])
    .option('--wait <seconds>', 'wait for every host\'s result, at most this long', kit.positiveInt('--wait'))
    .option('--expires <seconds>', 'seconds each job waits for its host', kit.positiveInt('--expires'));
}

function targetOf(o: TargetOpts, kit: CliKit<unknown>, required: boolean): TargetInput | undefined {
  const target: TargetInput = {};
  if (o.agent.length) target.agents = o.agent;
  if (o.label.length) target.label = kit.labelWords(o.label).set;
  if (required && !target.agents && !target.label) throw kit.usage('cannot choose hosts: give --agent ID or --label KEY=VALUE');
  return target.agents || target.label ? target : undefined;
}

/** Reads a template file (YAML or JSON): {name, description?, zones}. */
function readTemplateFile(file: string, kit: CliKit<unknown>): { name: string; description?: string; zones: unknown } {
  let text: string;
  try {
    if (statSync(file).size > MAX_TEMPLATE_FILE) throw kit.usage(`cannot read template file "${file}": larger than ${MAX_TEMPLATE_FILE} bytes`);
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof Error && !('code' in e)) throw e;
    throw kit.usage(`cannot read template file "${file}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text, { maxAliasCount: 0 });
  } catch (e) {
    throw kit.usage(`cannot read template file "${file}": not YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw kit.usage(`cannot read template file "${file}": expected an object with name and zones`);
  // The server checks every field against its schema and names what is wrong.
  return doc as { name: string; description?: string; zones: unknown };
}

function templateText(tpl: TemplateView, kit: CliKit<unknown>): string {
  const { t } = kit;
  const lines = [`template ${t(tpl.id)}: ${t(tpl.name)}${tpl.description ? ` - ${t(tpl.description)}` : ''}`, `  updated ${t(tpl.updated_at)}`];
  for (const [zone, s] of Object.entries(tpl.zones)) {
    lines.push(`  zone ${t(zone)}:`);
    if (s.services?.length) lines.push(`    services: ${t(s.services.join(', '))}`);
    if (s.ports?.length) lines.push(`    ports: ${t(s.ports.join(', '))}`);
    for (const r of s.rich_rules ?? []) lines.push(`    rich rule: ${t(r)}`);
  }
  return lines.join('\n');
}

/** One host's outcome in words: what would change or changed, or why it failed. */
function hostOutcome(j: JobView | undefined, kit: CliKit<unknown>): string {
  const { t } = kit;
  if (!j) return 'unknown';
  if (!FINAL_JOB_STATUSES.has(j.status)) return t(j.status);
  const r = j.result as { error?: string; output?: { changed?: boolean; dry_run?: boolean; change_id?: string; confirm_by?: string; items?: Array<{ zone: string; kind: string; value: string; changed: boolean }> } } | null;
  if (j.status !== 'completed' || !r?.output) return `${t(j.status)}: ${t(r?.error ?? '')}`;
  const o = r.output;
  const changed = (o.items ?? []).filter((i) => i.changed).map((i) => `${i.zone} ${i.kind} ${i.value}`);
  const verb = o.dry_run ? 'would add' : 'added';
  const what = changed.length ? `${verb} ${changed.join('; ')}` : o.dry_run ? 'nothing would change' : 'nothing changed';
  return `${t(what)}${o.change_id ? ` (change ${t(o.change_id)}: confirm by ${t(o.confirm_by)})` : ''}`;
}

/**
 * Prints a batch's hosts and their jobs, with what each would change or changed once waited for;
 * the exit code: 0 every host completed, 1 one did not, 2 one is still open.
 */
async function hostsResult<O extends { json?: boolean }>(kit: CliKit<O>, o: O & { wait?: number }, c: OperatorClient, batch: BatchView): Promise<number> {
  const b = o.wait !== undefined && o.wait > 0 ? await kit.waitBatch(c, batch.id, o.wait) : batch;
  const hosts = b.hosts ?? [];
  const waited = o.wait !== undefined;
  kit.out(o, { batch: b }, () =>
    [
      `batch ${kit.t(b.id)}: ${hosts.length} host(s)`,
      kit.table([
        ['AGENT', 'HOSTNAME', 'JOB', waited ? 'RESULT' : 'STATUS'],
        ...hosts.map((h) => [kit.t(h.agent_id), kit.t(h.hostname ?? '-'), kit.t(h.job.id), waited ? hostOutcome(h.job, kit as unknown as CliKit<unknown>) : kit.t(h.job.status)]),
      ]),
    ].join('\n'),
  );
  if (!waited) return 0;
  if (hosts.some((h) => !FINAL_JOB_STATUSES.has(h.job.status))) return 2;
  return hosts.every((h) => h.job.status === 'completed') ? 0 : 1;
}

export function templateCommands<O extends { json?: boolean }>(p: Command, kit: CliKit<O>): void {
  const k = kit as unknown as CliKit<unknown>;
  const tpl = p.command('templates').description('firewall templates: a desired state of zones applied to many hosts');
  kit.common(tpl.command('list').description('list templates')).action((o: O) =>
    kit.withClient(o, async (c) => {
      const list = await c.listTemplates();
      kit.out(o, { templates: list }, () =>
        list.length === 0 ? 'no templates' : kit.table([['ID', 'NAME', 'ZONES', 'UPDATED'], ...list.map((x) => [x.id, x.name, Object.keys(x.zones).join(','), x.updated_at].map(kit.t))]),
      );
    }),
  );
  kit.common(tpl.command('show <id>').description('show a template')).action((id: string, o: O) =>
    kit.withClient(o, async (c) => {
      const x = await c.getTemplate(id);
      kit.out(o, { template: x }, () => templateText(x, k));
    }),
  );
  kit
    .common(tpl.command('create').description('create a template from a YAML or JSON file: name, description, zones: {ZONE: {services, ports, rich_rules}}'))
    .requiredOption('--file <file>', 'the template file')
    .option('--replace <id>', 'replace this template instead of creating one')
    .action((o: O & { file: string; replace?: string }) =>
      kit.withClient(o, async (c) => {
        const body = readTemplateFile(o.file, k);
        const x = o.replace === undefined ? await c.createTemplate(body) : await c.replaceTemplate(o.replace, body);
        kit.out(o, { template: x }, () => templateText(x, k));
      }),
    );
  kit.common(tpl.command('delete <id>').description('delete a template')).action((id: string, o: O) =>
    kit.withClient(o, async (c) => {
      await c.deleteTemplate(id);
      kit.out(o, { deleted: id }, () => `template ${kit.t(id)} deleted`);
    }),
  );
  targetOptions(kit.common(tpl.command('preview <id>').description('dry-run a template on hosts: one job per host saying what would change')), k)
    .option('--permanent', 'the permanent configuration instead of the runtime')
    .action((id: string, o: O & TargetOpts) =>
      kit.withClient(o, async (c) => {
        return hostsResult(kit, o, c, await c.runTemplate(id, 'preview', { target: targetOf(o, k, true)!, permanent: o.permanent, expires_in: o.expires }));
      }),
    );
  targetOptions(kit.common(tpl.command('apply <id>').description('apply a template on hosts: one job per host, each rolled back by its host unless confirmed in time')), k)
    .option('--permanent', 'the permanent configuration instead of the runtime')
    .option('--confirm-timeout <seconds>', 'each host rolls the whole template back unless `jobs submit AGENT firewalld confirm --param change_id=ID` comes in time (5 to 3600)', kit.positiveInt('--confirm-timeout'))
    .action((id: string, o: O & TargetOpts & { confirmTimeout?: number }) =>
      kit.withClient(o, async (c) => {
        return hostsResult(kit, o, c, await c.runTemplate(id, 'apply', { target: targetOf(o, k, true)!, permanent: o.permanent, expires_in: o.expires, confirm_timeout: o.confirmTimeout }));
      }),
    );

  const fw = p.command('firewall').description('firewall drift: hosts whose firewall changed outside TuxSec');
  targetOptions(kit.common(fw.command('check').description('ask hosts for their firewall hash (every active host within reach by default)')), k).action((o: O & TargetOpts) =>
    kit.withClient(o, async (c) => {
      const target = targetOf(o, k, false);
      return hostsResult(kit, o, c, await c.checkFirewalls({ ...(target ? { target } : {}), expires_in: o.expires }));
    }),
  );
  kit.common(fw.command('drift').description('list hosts whose firewall differs from its baseline')).action((o: O) =>
    kit.withClient(o, async (c) => {
      const list = await c.driftedFirewalls();
      kit.out(o, { drifted: list }, () =>
        list.length === 0
          ? 'no host drifted'
          : kit.table([['AGENT', 'HOSTNAME', 'BASELINE', 'CURRENT', 'CHECKED'], ...list.map((d) => [d.agent_id, d.hostname, d.baseline.slice(0, 12), d.current.slice(0, 12), d.checked_at].map(kit.t))]),
      );
    }),
  );
  kit.common(fw.command('baseline <agent>').description('accept a host\'s last firewall hash as its baseline')).action((id: string, o: O) =>
    kit.withClient(o, async (c) => {
      const f = await c.acceptFirewallBaseline(id);
      kit.out(o, { firewall: f }, () => `agent ${kit.t(id)}: baseline ${kit.t(f.baseline)}`);
    }),
  );
}
