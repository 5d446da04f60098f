import fs from 'node:fs';
import os from 'node:os';
import { execa } from 'execa';
import { maskUrl } from '../formats/config.js';
import type { LinkType } from '../formats/config.js';
import { effectiveLinkTypes, probeLinkTypes } from '../workspace/link.js';
import type { Repo } from './repo.js';

/** What `tdv doctor` found: its `--json` document. */
export interface DoctorReport {
  tdv: string;
  node: string;
  /** `linux 6.8.0 x64`. */
  platform: string;
  git: { version?: string; error?: string };
  docker: { available: boolean; client?: string; server?: string; error?: string };
  /** Absent outside a repository; `error` when it could not be opened. */
  repo?: RepoReport | { error: string };
}

export interface RepoReport {
  root: string;
  cache: {
    dir: string;
    /** The file system of the cache (statfs): a name when known, else its magic number in hex. */
    fs: string;
    /** cache.type as configured, and as used (root leaves out hardlink and symlink unless allowed). */
    configured: LinkType[];
    effective: LinkType[];
    /** The first effective type that works from the cache to the workspace: what checkout uses. */
    used?: LinkType;
    /** Which link types work from the cache to the workspace, probed with a temp file. */
    works?: Record<LinkType, boolean>;
    probeError?: string;
  };
  /** URLs and endpoints with credentials masked, as `tdv remote list` shows them. */
  remotes: { name: string; url: string; endpoint?: string; default: boolean }[];
}

/** statfs magic numbers of the file systems people keep data on (Linux). */
const FS_NAMES: Record<number, string> = {
  0xef53: 'ext4',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x2fc12fc1: 'zfs',
  0x01021994: 'tmpfs',
  0x794c7630: 'overlayfs',
  0x6969: 'nfs',
  0xff534d42: 'cifs',
  0xfe534d42: 'smb2',
  0x65735546: 'fuse',
  0x4d44: 'vfat',
  0x5346544e: 'ntfs',
  0x2011bab0: 'exfat',
  0x73717368: 'squashfs',
  0x6a656a63: 'fakeowner',
  0xf2f52010: 'f2fs',
  0x01021997: '9p',
};

/** Names a file system type from statfs. */
export function fsName(type: number): string {
  return FS_NAMES[type >>> 0] ?? `0x${(type >>> 0).toString(16)}`;
}

/**
 * Reports the environment tdv runs in: versions, platform, Git, Docker, and
 * with a repository its cache (where, on which file system, which link types
 * work from it to the workspace) and remotes (URLs with credentials masked).
 * Read-only, except for the probe's temp files.
 */
export async function doctor(repo: Repo | { error: string } | undefined, opts: { version: string; env?: NodeJS.ProcessEnv }): Promise<DoctorReport> {
  const [git, docker] = await Promise.all([gitVersion(opts.env), dockerVersion(opts.env)]);
  return {
    tdv: opts.version,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    git,
    docker,
    ...(repo === undefined ? {} : { repo: 'error' in repo ? repo : repoReport(repo) }),
  };
}

function repoReport(repo: Repo): RepoReport {
  const configured = [...repo.config.cache.type];
  const effective = effectiveLinkTypes(configured, { allowRootLinks: repo.config.cache.allow_root_links }).types;
  let fsType = 'unknown';
  try {
    fsType = fsName(fs.statfsSync(fs.existsSync(repo.cacheDir) ? repo.cacheDir : repo.root).type);
  } catch {
    /* statfs is not available everywhere: the rest of the report still helps */
  }
  const cache: RepoReport['cache'] = { dir: repo.cacheDir, fs: fsType, configured, effective };
  try {
    cache.works = probeLinkTypes(repo.store.tmpDir, repo.tmpDir);
    cache.used = effective.find((t) => cache.works![t]) ?? 'copy';
  } catch (err) {
    cache.probeError = (err as Error).message;
  }
  const cfg = repo.config;
  const remotes = Object.keys(cfg.remote)
    .sort()
    .map((name) => {
      const r = cfg.remote[name]!;
      return { name, url: maskUrl(r.url), ...(r.endpointurl ? { endpoint: maskUrl(r.endpointurl) } : {}), default: cfg.core.remote === name };
    });
  return { root: repo.root, cache, remotes };
}

async function gitVersion(env?: NodeJS.ProcessEnv): Promise<DoctorReport['git']> {
  const r = await execa('git', ['--version'], { reject: false, timeout: 10_000, env, extendEnv: env === undefined });
  if (r.exitCode !== 0) return { error: firstLine(r.stderr || (r as { shortMessage?: string }).shortMessage || 'git did not run') };
  return { version: r.stdout.trim().replace(/^git version /, '') };
}

/** Docker's client and server (daemon) versions; a daemon that does not answer is said so. */
async function dockerVersion(env?: NodeJS.ProcessEnv): Promise<DoctorReport['docker']> {
  const r = await execa('docker', ['version', '--format', '{{json .}}'], { reject: false, timeout: 15_000, env, extendEnv: env === undefined });
  let doc: { Client?: { Version?: string }; Server?: { Version?: string } | null } = {};
  try {
    doc = JSON.parse(r.stdout) as typeof doc;
  } catch {
    /* not JSON: docker missing, or too old for --format */
  }
  const client = doc.Client?.Version;
  const server = doc.Server?.Version;
  if (r.exitCode === 0 && server) return { available: true, ...(client ? { client } : {}), server };
  const error = (r as { code?: string }).code === 'ENOENT' ? 'docker is not installed (not on PATH)' : firstLine(r.stderr || (r as { shortMessage?: string }).shortMessage || 'docker did not answer');
  return { available: false, ...(client ? { client } : {}), error };
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0] ?? '';
}
