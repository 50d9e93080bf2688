// Bundles the console into <outdir>/{index.html,app.js,app.css,favicon.svg}, or (with --tests)
// the node:test suites into .test-build/. Output depends only on the sources: no timestamps, no
// hashes of the build machine, so the same tree always gives the same bytes.

import { readdir, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);

function option(name, fallback) {
  const at = args.indexOf(name);
  if (at === -1) return fallback;
  const value = args[at + 1];
  if (!value || value.startsWith("--")) throw new Error(`${name} needs a value`);
  return value;
}

const common = {
  bundle: true,
  target: "es2022",
  jsx: "automatic",
  jsxImportSource: "preact",
  charset: "utf8",
  legalComments: "none",
  logLevel: "warning",
  absWorkingDir: root,
  write: false,
};

async function buildConsole(outdir) {
  const result = await esbuild.build({
    ...common,
    entryPoints: { app: "src/main.tsx" },
    outdir,
    format: "esm",
    platform: "browser",
    minify: true,
    sourcemap: false,
    define: { "process.env.NODE_ENV": '"production"' },
  });
  const files = new Map(result.outputFiles.map((file) => [file.path, file.contents]));
  const expected = ["app.js", "app.css"].map((name) => resolve(outdir, name));
  for (const path of files.keys()) {
    if (!expected.includes(path)) throw new Error(`unexpected build output ${path}`);
  }
  await mkdir(outdir, { recursive: true });
  for (const path of expected) {
    const contents = files.get(path);
    if (!contents) throw new Error(`the build did not produce ${path}`);
    await writeFile(path, contents);
  }
  for (const name of ["index.html", "favicon.svg"]) {
    await writeFile(join(outdir, name), await readFile(join(root, "static", name)));
  }
}

async function buildTests() {
  const outdir = join(root, ".test-build");
  await rm(outdir, { recursive: true, force: true });
  const suites = (await readdir(join(root, "test"))).filter((name) => name.endsWith(".test.ts"));
  const result = await esbuild.build({
    ...common,
    entryPoints: suites.map((name) => join("test", name)),
    outdir,
    outExtension: { ".js": ".mjs" },
    format: "esm",
    platform: "node",
    packages: "external",
  });
  await mkdir(outdir, { recursive: true });
  for (const file of result.outputFiles) await writeFile(file.path, file.contents);
}

if (args.includes("--tests")) {
  await buildTests();
} else {
  await buildConsole(resolve(option("--outdir", join(root, "dist"))));
}
