/** Answers already worked out, by available locales and header: a client sends the same few. */
const picked = new Map<string, string | undefined>();
/** Bounds the memo (at most ~140 KiB): headers are few in practice, but a client may send any. */
const MAX_PICKED = 512;

/**
 * The best of `available` locales for an `Accept-Language` header (RFC 9110 q-values): an exact
 * tag first, then a same-language match (`fr-CA` → `fr`, `fr` → `fr-FR`); undefined when none fits.
 * Memoized: every send parses the header (Node's `fetch` sends `*`), and parsing it cost more than
 * the rest of the controller (bench/README.md).
 */
export function pickLocale(
  header: string | undefined,
  available: readonly string[],
): string | undefined {
  if (!header || available.length === 0) return undefined;
  if (header.length > 256) return parse(header, available);
  const key = `${available.join(',')}\n${header}`;
  if (picked.has(key)) return picked.get(key);
  const locale = parse(header, available);
  if (picked.size >= MAX_PICKED) picked.clear();
  picked.set(key, locale);
  return locale;
}

function parse(header: string, available: readonly string[]): string | undefined {
  const wanted = header
    .split(',')
    .map((part, index) => {
      const [tag = '', ...params] = part.trim().split(';');
      // A malformed q-value makes the entry unusable (NaN is filtered out below).
      const q = params.map((p) => /^\s*q=(.*)$/i.exec(p)?.[1]?.trim()).find((v) => v !== undefined);
      return { tag: tag.trim().toLowerCase(), q: q === undefined ? 1 : Number(q || NaN), index };
    })
    .filter((w) => w.tag !== '' && w.tag !== '*' && Number.isFinite(w.q) && w.q > 0)
    .sort((a, b) => b.q - a.q || a.index - b.index);
  const byLower = new Map(available.map((tag) => [tag.toLowerCase(), tag]));
  for (const { tag } of wanted) {
    const exact = byLower.get(tag);
    if (exact) return exact;
    const language = tag.split('-')[0] as string;
    const sameLanguage =
      byLower.get(language) ?? available.find((a) => a.toLowerCase().split('-')[0] === language);
    if (sameLanguage) return sameLanguage;
  }
  return undefined;
}
