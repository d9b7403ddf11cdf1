/**
 * Connection-tracking helpers. firewalld attaches helpers to zones through services (a service
 * lists its helpers), so a zone's helpers are those of its services, and enabling a helper in a
 * zone enables the service that carries it (the service of the same name when there is one).
 */
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import { HELPER, SERVICE, listNames } from './objects.ts';
import { EL, applyIdem, reader, where, write, writeParams, zoneElement, type Deps } from './common.ts';
import { readZone } from './zones.ts';
import { readService } from './services.ts';
import { P } from './validate.ts';

async function zoneHelpers(d: Deps, zone: string, permanent?: boolean): Promise<Array<{ helper: string; service: string }>> {
  const z = await readZone(d, zone, permanent);
  const out: Array<{ helper: string; service: string }> = [];
  for (const s of z.services) {
    const info = await readService(d, s, permanent).catch(() => null);
    for (const h of info?.helpers ?? []) out.push({ helper: h, service: s });
  }
  return out;
}

/** The service that carries a helper: same name first, else the first service listing it. */
async function serviceForHelper(d: Deps, helper: string, permanent?: boolean): Promise<string> {
  const same = await readService(d, helper, permanent).catch(() => null);
  if (same?.helpers.includes(helper)) return helper;
  for (const n of await listNames(d.fw, SERVICE, permanent)) {
    const info = await readService(d, n, permanent).catch(() => null);
    if (info?.helpers.includes(helper)) return n;
  }
  throw new TuxsecError(ErrorCodes.notFound, `cannot add helper "${helper}": no service carries this helper`, { helper });
}

export function helperActions(d: Deps): AnyAction[] {
  const zh = writeParams({ zone: P.zone(), helper: P.helper() }, { permanent: true });
  return [
    reader('list_helpers', 'List all available helper modules', {}, async () => ({ helpers: await listNames(d.fw, HELPER) })),
    reader('zone_list_helpers', 'List helpers enabled in a zone (through its services)', { zone: P.zone(), permanent: P.permanent() }, async (p) => {
      const list = await zoneHelpers(d, p.zone, p.permanent);
      return { zone: p.zone, helpers: [...new Set(list.map((x) => x.helper))], via: list };
    }),
    defineAction({
      name: 'zone_add_helper',
      description: 'Add helper module to zone (enables the service carrying it)',
      params: zh,
      access: 'write',
      handler: async (p) => {
        const have = await zoneHelpers(d, p.zone, p.permanent);
        const service = have.find((x) => x.helper === p.helper)?.service ?? (await serviceForHelper(d, p.helper, p.permanent));
        const el = zoneElement(d, EL.service, p.zone, [service], p.permanent);
        const res = await write(
          d,
          {
            what: `add helper "${p.helper}" (service "${service}") to zone "${p.zone}" (${where(p.permanent)})`,
            scopes: [{ kind: 'zone', name: p.zone }],
            check: async () => !(await zoneHelpers(d, p.zone, p.permanent)).some((x) => x.helper === p.helper),
            apply: () => applyIdem(el.add),
          },
          p,
        );
        return { ...res, service };
      },
    }),
    defineAction({
      name: 'zone_remove_helper',
      description: 'Remove helper module from zone (disables the services carrying it)',
      params: zh,
      access: 'write',
      handler: async (p) => {
        const carriers = async () => [...new Set((await zoneHelpers(d, p.zone, p.permanent)).filter((x) => x.helper === p.helper).map((x) => x.service))];
        const services = await carriers();
        const res = await write(
          d,
          {
            what: `remove helper "${p.helper}" from zone "${p.zone}" (${where(p.permanent)})`,
            scopes: [{ kind: 'zone', name: p.zone }],
            check: async () => (await carriers()).length > 0,
            apply: async () => {
              let any = false;
              for (const s of await carriers()) any = (await applyIdem(zoneElement(d, EL.service, p.zone, [s], p.permanent).remove)) || any;
              return any;
            },
          },
          p,
        );
        return { ...res, services };
      },
    }),
  ];
}
