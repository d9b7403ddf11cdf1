/**
 * Rich rules of a zone. A rule goes to firewalld as one D-Bus string and firewalld parses it.
 */
import { defineAction, type AnyAction } from '../../../sdk/action.ts';
import { Params } from '../../../sdk/schema.ts';
import { EL, toggleZoneElement, writeParams, type Deps } from './common.ts';
import { readZone } from './zones.ts';
import { P, checkRichRule } from './validate.ts';

export function richRuleActions(d: Deps): AnyAction[] {
  const params = writeParams({ zone: P.zone(), rule: P.rule() }, { permanent: true });
  return [
    defineAction({
      name: 'add_rich_rule',
      description: 'Add rich rule to zone',
      params,
      access: 'write',
      handler: (p) => toggleZoneElement(d, EL.richRule, p, [checkRichRule('rule', p.rule)], true),
    }),
    defineAction({
      name: 'remove_rich_rule',
      description: 'Remove rich rule from zone',
      params,
      access: 'write',
      handler: (p) => toggleZoneElement(d, EL.richRule, p, [checkRichRule('rule', p.rule)], false),
    }),
    defineAction({
      name: 'list_rich_rules',
      description: 'List rich rules of a zone',
      params: Params({ zone: P.zone(), permanent: P.permanent() }),
      access: 'read',
      handler: async (p) => ({ zone: p.zone, rich_rules: (await readZone(d, p.zone, p.permanent)).rich_rules }),
    }),
  ];
}
