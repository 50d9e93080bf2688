// RFC 6962 Merkle tree hashing and RFC 9162 section 2.1.3.2 inclusion proof verification.
// Indices are plain numbers (exact below 2^53); the halving uses division, not 32-bit shifts.

import { sha256 } from "./bytes";

const LEAF = new Uint8Array([0]);
const NODE = new Uint8Array([1]);

export function leafHash(data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  return sha256(LEAF, data);
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  return sha256(NODE, left, right);
}

/** MTH over leaf *data* (not leaf hashes). */
export async function merkleRoot(leaves: Uint8Array[]): Promise<Uint8Array<ArrayBuffer>> {
  if (leaves.length === 0) return sha256();
  if (leaves.length === 1) return leafHash(leaves[0]!);
  const k = largestPowerOfTwoBelow(leaves.length);
  return nodeHash(await merkleRoot(leaves.slice(0, k)), await merkleRoot(leaves.slice(k)));
}

/** The audit path of leaf `index` (RFC 6962 section 2.1.1), for tests and tooling. */
export async function auditPath(leaves: Uint8Array[], index: number): Promise<Uint8Array<ArrayBuffer>[]> {
  if (leaves.length <= 1) return [];
  const k = largestPowerOfTwoBelow(leaves.length);
  if (index < k) {
    return [...(await auditPath(leaves.slice(0, k), index)), await merkleRoot(leaves.slice(k))];
  }
  return [...(await auditPath(leaves.slice(k), index - k)), await merkleRoot(leaves.slice(0, k))];
}

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

const odd = (n: number) => n % 2 === 1;
const half = (n: number) => Math.floor(n / 2);

/** The root an audit path leads to, or null when the path cannot belong to such a tree. */
export async function rootFromInclusion(
  leaf: Uint8Array,
  leafIndex: number,
  treeSize: number,
  path: Uint8Array[],
): Promise<Uint8Array<ArrayBuffer> | null> {
  if (!Number.isSafeInteger(leafIndex) || !Number.isSafeInteger(treeSize)) return null;
  if (leafIndex < 0 || leafIndex >= treeSize) return null;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = await leafHash(leaf);
  for (const p of path) {
    if (sn === 0) return null;
    if (odd(fn) || fn === sn) {
      r = await nodeHash(p, r);
      if (!odd(fn)) {
        while (!(odd(fn) || fn === 0)) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? r : null;
}
