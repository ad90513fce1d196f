/**
 * SQL: whether the current version of the otp_requests row `alias` is a heap-only tuple
 * (`HEAP_ONLY_TUPLE`, 0x8000 of `t_infomask2`, read with pageinspect), the version only a HOT
 * update writes: one that added no index entry. The database needs `CREATE EXTENSION pageinspect`.
 */
export const isHeapOnly = (alias: string): string => `(
  SELECT (t.t_infomask2 & 32768) <> 0
    FROM heap_page_items(get_raw_page(${alias}.tableoid::regclass::text,
                                      (${alias}.ctid::text::point)[0]::int)) t
   WHERE t.lp = (${alias}.ctid::text::point)[1]::int)`;
