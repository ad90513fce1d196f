/**
 * Drops the oldest entry of a Map or Set (insertion order) once it holds more than `capacity`:
 * the bound each of an instance's in-memory hints keeps (codes sent, destinations normalized,
 * destinations with a history, message templates split). Called after each insert, so one drop
 * is always enough.
 */
export function trimToCapacity<K>(
  entries: { readonly size: number; keys(): Iterator<K>; delete(key: K): boolean },
  capacity: number,
): void {
  if (entries.size <= capacity) return;
  const oldest = entries.keys().next();
  if (!oldest.done) entries.delete(oldest.value);
}
