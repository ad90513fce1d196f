import { describe, expect, it } from '@jest/globals';
import { pickLocale } from './accept-language.js';

describe('pickLocale', () => {
  const available = ['en', 'fr', 'pt-BR'];

  it.each<[string | undefined, string | undefined]>([
    ['fr', 'fr'],
    ['FR-ca', 'fr'],
    ['pt-BR,pt;q=0.9', 'pt-BR'],
    ['pt', 'pt-BR'],
    ['de, fr;q=0.5', 'fr'],
    ['en;q=0.2, fr;q=0.8', 'fr'],
    ['fr;q=0, en', 'en'],
    ['de', undefined],
    ['*', undefined],
    ['', undefined],
    [undefined, undefined],
    ['en;q=abc, fr', 'fr'],
  ])('%j → %j', (header, expected) => {
    expect(pickLocale(header, available)).toBe(expected);
  });

  it('keeps header order between equal q-values', () => {
    expect(pickLocale('pt-BR, fr', available)).toBe('pt-BR');
    expect(pickLocale('fr, pt-BR', available)).toBe('fr');
  });
});
