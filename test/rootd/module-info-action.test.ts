// systeminfo get_module_info through the real tuxsec-rootd: the same module_info the socket's
// module_info request gives, for a built-in module and for a plugin, so the server (which has
// only jobs) can build forms from an agent's own action schemas.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { pluginDir, writePlugin } from '../helpers/plugin.ts';

let d: RootdHandle;

before(async () => {
  const plugins = pluginDir();
  writePlugin(plugins, {
    name: 'formdemo',
    description: 'a plugin whose schema the console renders',
    actions: `[defineAction({ name: 'greet', description: 'Say hello', access: 'read',
      params: Params({ who: Type.String({ maxLength: 20, description: 'whom to greet' }), times: Type.Optional(Type.Integer({ minimum: 1, maximum: 3 })) }),
      handler: (p) => ({ said: 'hello ' + p.who }) })]`,
  });
  d = await startRootd({ config: { plugins_dir: plugins, modules: { firewalld: { enabled: false }, formdemo: {} } } });
});

after(async () => {
  await d?.stop();
});

test('get_module_info gives what module_info gives, for a built-in module and a plugin', async () => {
  for (const module of ['systeminfo', 'formdemo']) {
    const viaAction = (await d.client.execute('systeminfo', 'get_module_info', { module })) as { module_info: unknown };
    assert.deepEqual(viaAction, { module_info: await d.client.moduleInfo(module) }, module);
  }
  const info = ((await d.client.execute('systeminfo', 'get_module_info', { module: 'formdemo' })) as { module_info: { capabilities: Array<Record<string, unknown>> } }).module_info;
  const greet = info.capabilities.find((c) => c.name === 'greet')!;
  assert.equal(greet.access, 'read');
  // The plugin's own JSON Schema, limits included: what a generated form needs.
  assert.match(JSON.stringify(greet), /"maxLength":20/);
  assert.match(JSON.stringify(greet), /whom to greet/);
});

test('get_module_info names what is wrong: an unknown module, a disabled one, a bad name', async () => {
  const codeOf = async (params: Record<string, unknown>) => {
    try {
      await d.client.execute('systeminfo', 'get_module_info', params);
    } catch (e) {
      return { code: (e as { code?: string }).code, message: (e as Error).message };
    }
    return assert.fail(`expected ${JSON.stringify(params)} to fail`);
  };
  assert.deepEqual(await codeOf({ module: 'nope' }), { code: 'module-not-found', message: 'Module not found: nope' });
  assert.equal((await codeOf({ module: 'firewalld' })).code, 'module-unavailable');
  const bad = await codeOf({ module: 'Bad Name; rm -rf /' });
  assert.equal(bad.code, 'invalid-params');
  assert.match(bad.message, /"module"/);
  assert.equal((await codeOf({})).code, 'invalid-params');
  assert.equal((await codeOf({ module: 'systeminfo', extra: 1 })).code, 'invalid-params');
});
