import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SyncError } from '../../../lib/errors';
import type { CrmQuote, CrmQuoteDetail, SiaghFieldList } from '../../../lib/types';
import { type PreInvoiceOptions, mapQuoteToPreInvoice, suidFor } from '../../../lib/sync/preinvoice-mapper';

const QUOTE_ID = '265d2327-64bd-4ac5-9fb9-22ae0e838539';

function row(over: Partial<CrmQuoteDetail> = {}): CrmQuoteDetail {
  return {
    productCode: 'Product-1',
    productId: '9a0c1f44-2b1e-4c8e-a2f1-0d9d3c1b7e55',
    productName: 'رگولاتور گاز خانگی',
    productUnitTypeName: 'قطعه',
    count: 1.0,
    baseUnitPrice: 100000,
    finalUnitPrice: 109000,
    totalDiscount: 0,
    totalVat: 9000,
    discountPercent: 0,
    detailDescription: '',
    isService: false,
    ...over,
  };
}

function quote(over: Partial<CrmQuote> = {}): CrmQuote {
  return {
    crmId: QUOTE_ID,
    docKind: 'quote',
    crmObjectTypeCode: 'PI_5',
    identityId: '3f6448af-6dfd-4c36-8be1-9f3d46ccff6c',
    subject: 'Test Organization 1766067758042(مشتری) - 100-965815809(پیش فاکتور فروش)',
    description: '',
    number: '',
    totalValue: 100000,
    discount: 0,
    vat: 9000,
    finalValue: 109000,
    creatDate: '2025-12-21T14:06:17.173',
    modifyDate: '2025-12-21T14:06:17.173',
    details: [row()],
    ...over,
  };
}

const base: PreInvoiceOptions = { fiscalYear: 1404, customerCode: 8407 };
const h = (header: SiaghFieldList, key: string): string | undefined => header.find(([k]) => k === key)?.[1];
const isErr = (code: string) => (e: unknown) => e instanceof SyncError && e.code === code;

describe('sync/preinvoice-mapper', () => {
  it('maps a captured CRM quote to the header in evidence order and the rows', () => {
    const r = mapQuoteToPreInvoice(quote(), base);
    assert.deepEqual(r.input.header, [
      ['hssanadstate', '8'],
      ['codenoeesanad', '2'],
      ['codesalemodel', '5'],
      ['salmali', '1404'],
      ['codenoeepardakht', '2'],
      ['codemarkazforush', '5'],
      ['codecontact', ''],
      ['codemoshtari', '8407'],
      ['codenoeeforush', '1'],
      ['codevaseteh', '31'],
      ['tozihat', 'Test Organization 1766067758042(مشتری) - 100-965815809(پیش فاکتور فروش)'],
      ['namenoesanad', 'پیش فاکتور فروش'],
    ]);
    assert.deepEqual(r.input.rows, [{ itemCode: 'Product-1', unitName: 'قطعه', qty: 1, price: 100000, discount: 0 }]);
    assert.equal(r.input.suid, suidFor(QUOTE_ID, 'quote'));
    assert.ok(r.warnings.some((w) => w.includes('Product-1') && w.includes('product code map')));
  });

  describe('fiscal year', () => {
    it('is exactly the one given, whatever today is', () => {
      assert.equal(h(mapQuoteToPreInvoice(quote(), { ...base, fiscalYear: 1403 }).input.header, 'salmali'), '1403');
      assert.equal(h(mapQuoteToPreInvoice(quote({ creatDate: '2026-01-05T10:00:00' }), { ...base, fiscalYear: 1404 }).input.header, 'salmali'), '1404');
    });

    it('is required and must be a Jalali year', () => {
      for (const fy of [undefined, 2025, 1404.5, '1404', 0]) {
        assert.throws(() => mapQuoteToPreInvoice(quote(), { ...base, fiscalYear: fy as number }), isErr('CONFIG'), String(fy));
      }
      assert.throws(() => mapQuoteToPreInvoice(quote(), { ...base, fiscalYear: 2025 }), /Gregorian/);
    });
  });

  describe('customer fields (open question: which field)', () => {
    it('codemoshtari by default', () => {
      const r = mapQuoteToPreInvoice(quote(), { ...base, customerCode: '8407' });
      assert.equal(h(r.input.header, 'codemoshtari'), '8407');
      assert.equal(h(r.input.header, 'codecontact'), '');
    });

    it('codecontact only, or both', () => {
      const c = mapQuoteToPreInvoice(quote(), { ...base, customerField: 'codecontact' });
      assert.equal(h(c.input.header, 'codecontact'), '8407');
      assert.equal(h(c.input.header, 'codemoshtari'), '');
      const b = mapQuoteToPreInvoice(quote(), { ...base, customerCode: 8327, accountPartyCode: 5500014, customerField: 'both', customerValue: 'accountParty' });
      assert.equal(h(b.input.header, 'codecontact'), '8327'); // the official sample's shape
      assert.equal(h(b.input.header, 'codemoshtari'), '5500014');
    });

    it('accountParty falls back to the contact Code with a warning', () => {
      const r = mapQuoteToPreInvoice(quote(), { ...base, customerValue: 'accountParty', accountPartyCode: null });
      assert.equal(h(r.input.header, 'codemoshtari'), '8407');
      assert.ok(r.warnings.some((w) => w.includes('AccountPartyCode')));
    });

    it('an unmapped customer is CUSTOMER_NOT_MAPPED; unknown options are CONFIG', () => {
      for (const customerCode of ['', 0, 'abc', -3, null as unknown as number]) {
        assert.throws(() => mapQuoteToPreInvoice(quote(), { ...base, customerCode }), isErr('CUSTOMER_NOT_MAPPED'), String(customerCode));
      }
      assert.equal(h(mapQuoteToPreInvoice(quote(), { ...base, customerCode: '۸۴۰۷' }).input.header, 'codemoshtari'), '8407');
      assert.throws(() => mapQuoteToPreInvoice(quote(), { ...base, customerField: 'x' as 'both' }), isErr('CONFIG'));
      assert.throws(() => mapQuoteToPreInvoice(quote(), { ...base, customerValue: 'x' as 'code' }), isErr('CONFIG'));
    });
  });

  describe('header options', () => {
    it('sale model from the CRM type digits, else 1 with a warning, or as configured', () => {
      assert.equal(h(mapQuoteToPreInvoice(quote({ crmObjectTypeCode: 'PI_12' }), base).input.header, 'codesalemodel'), '12');
      const p = mapQuoteToPreInvoice(quote({ crmObjectTypeCode: 'Productinvoice' }), base);
      assert.equal(h(p.input.header, 'codesalemodel'), '1');
      assert.ok(p.warnings.some((w) => w.includes('Productinvoice')));
      assert.equal(h(mapQuoteToPreInvoice(quote(), { ...base, saleModel: '3' }).input.header, 'codesalemodel'), '3');
    });

    it('defaults follow the latest evidence: sales centre = the sale-model digits, intermediary 31; empty means the default; both configurable', () => {
      const r = mapQuoteToPreInvoice(quote(), base);
      assert.equal(h(r.input.header, 'codemarkazforush'), '5');
      assert.equal(h(r.input.header, 'codevaseteh'), '31');
      for (const opts of [{ salesCentre: '', intermediary: '' }, { salesCentre: 'auto' }, { salesCentre: ' AUTO ', intermediary: '  ' }]) {
        const e = mapQuoteToPreInvoice(quote({ crmObjectTypeCode: 'PI_7' }), { ...base, ...opts });
        assert.equal(h(e.input.header, 'codemarkazforush'), '7', JSON.stringify(opts));
        assert.equal(h(e.input.header, 'codevaseteh'), '31', JSON.stringify(opts));
      }
      assert.equal(h(mapQuoteToPreInvoice(quote(), { ...base, saleModel: '3' }).input.header, 'codemarkazforush'), '3', 'follows a configured sale model too');
      assert.equal(h(mapQuoteToPreInvoice(quote({ crmObjectTypeCode: 'Productinvoice' }), base).input.header, 'codemarkazforush'), '1');
      const c = mapQuoteToPreInvoice(quote(), { ...base, salesCentre: '2', intermediary: '31', paymentType: '1', saleType: '2', documentName: 'پیش فاکتور فروش بنیان گاز' });
      assert.deepEqual(
        c.input.header.filter(([k]) => ['codemarkazforush', 'codevaseteh', 'codenoeepardakht', 'codenoeeforush', 'namenoesanad'].includes(k)),
        [
          ['codenoeepardakht', '1'],
          ['codemarkazforush', '2'],
          ['codenoeeforush', '2'],
          ['codevaseteh', '31'],
          ['namenoesanad', 'پیش فاکتور فروش بنیان گاز'],
        ],
      );
    });

    it('tozihat is the description, else the subject', () => {
      assert.equal(h(mapQuoteToPreInvoice(quote({ description: ' تحویل در انبار کرج ' }), base).input.header, 'tozihat'), 'تحویل در انبار کرج');
      assert.equal(h(mapQuoteToPreInvoice(quote({ description: null, subject: null }), base).input.header, 'tozihat'), '');
    });
  });

  describe('rows', () => {
    it('maps product codes through productCodeMap (by productCode, then productId), without a warning', () => {
      const r = mapQuoteToPreInvoice(
        quote({ details: [row(), row({ productCode: null, productId: 'guid-2', productName: 'شیر گاز', productUnitTypeName: null, count: 3, baseUnitPrice: 250000, totalDiscount: 50000 })] }),
        { ...base, productCodeMap: { 'Product-1': '500102014', 'guid-2': '500102015' } },
      );
      assert.deepEqual(r.input.rows, [
        { itemCode: '500102014', unitName: 'قطعه', qty: 1, price: 100000, discount: 0 },
        { itemCode: '500102015', unitName: 'عدد', qty: 3, price: 250000, discount: 50000 },
      ]);
      assert.deepEqual(r.warnings, []);
    });

    it('requireMappedProducts turns an unmapped product into BAD_INPUT naming it', () => {
      assert.throws(
        () => mapQuoteToPreInvoice(quote({ details: [row(), row({ productCode: 'Product-9' })] }), { ...base, productCodeMap: { 'Product-1': '500102014' }, requireMappedProducts: true }),
        (e: unknown) => e instanceof SyncError && e.code === 'BAD_INPUT' && e.message.includes('Product-9') && !e.message.includes('"Product-1"'),
      );
    });

    it('no details → BAD_INPUT', () => {
      assert.throws(() => mapQuoteToPreInvoice(quote({ details: [] }), base), isErr('BAD_INPUT'));
      assert.throws(() => mapQuoteToPreInvoice(quote({ details: undefined as unknown as CrmQuoteDetail[] }), base), isErr('BAD_INPUT'));
    });

    it('bad quantities, prices, discounts and missing product codes are BAD_INPUT naming the row', () => {
      for (const bad of [{ count: 0 }, { count: null }, { baseUnitPrice: -1 }, { baseUnitPrice: null }, { totalDiscount: -5 }, { productCode: null, productId: null }]) {
        assert.throws(
          () => mapQuoteToPreInvoice(quote({ details: [row(), row({ productName: 'فیلتر', ...bad })] }), base),
          (e: unknown) => e instanceof SyncError && e.code === 'BAD_INPUT' && e.message.includes('row 2 (فیلتر)'),
          JSON.stringify(bad),
        );
      }
    });

    it('reads decimal counts and a missing discount as 0', () => {
      const r = mapQuoteToPreInvoice(quote({ details: [row({ count: 2.5, totalDiscount: null })] }), base);
      assert.deepEqual(r.input.rows[0], { itemCode: 'Product-1', unitName: 'قطعه', qty: 2.5, price: 100000, discount: 0 });
    });

    it('warns when the document discount is more than the row discounts', () => {
      const r = mapQuoteToPreInvoice(quote({ discount: 20000, details: [row({ totalDiscount: 5000 })] }), base);
      assert.ok(r.warnings.some((w) => w.includes('20000')));
      const ok = mapQuoteToPreInvoice(quote({ discount: 5000, details: [row({ totalDiscount: 5000 })] }), base);
      assert.ok(!ok.warnings.some((w) => w.includes('document discount')));
    });
  });

  describe('VAT and document discount (no known Siagh field, so settings)', () => {
    const get = (h: SiaghFieldList, k: string) => h.find(([x]) => x === k)?.[1];

    it('sends nothing new by default: same header, same checksum as before these settings', () => {
      const r = mapQuoteToPreInvoice(quote({ vatPercent: 9 }), base);
      assert.equal(r.input.header.length, 12);
      assert.equal(r.input.rows[0].extra, undefined);
      const named = mapQuoteToPreInvoice(quote({ vatPercent: 9 }), { ...base, vatPercentKey: '', vatAmountKey: ' ', discountKey: '' });
      assert.equal(named.checksum, r.checksum);
    });

    it('VAT percent / amount and row VAT go to the columns the settings name', () => {
      const r = mapQuoteToPreInvoice(
        quote({ vatPercent: 9, vat: 27000, details: [row(), row({ productCode: 'Product-2', count: 2, totalVat: 18000 })] }),
        { ...base, vatPercentKey: 'darsadmaliat', vatAmountKey: 'sl_sanad.mablaghmaliat', rowVatKey: 'maliat' },
      );
      assert.equal(get(r.input.header, 'darsadmaliat'), '9');
      assert.equal(get(r.input.header, 'mablaghmaliat'), '27000');
      assert.deepEqual(r.input.rows.map((x) => x.extra), [{ maliat: 9000 }, { maliat: 18000 }]);
      // quote vat missing: the rows' VAT summed
      const s = mapQuoteToPreInvoice(quote({ vat: null, details: [row(), row({ productCode: 'P2', totalVat: 4500.5 })] }), { ...base, vatAmountKey: 'mablaghmaliat' });
      assert.equal(get(s.input.header, 'mablaghmaliat'), '13500.5');
    });

    it('the document-level discount (beyond the row discounts) to a header column, its percent to another', () => {
      const r = mapQuoteToPreInvoice(quote({ discount: 25000, discountPercent: 12.5, details: [row({ totalDiscount: 5000 })] }), { ...base, discountKey: 'takhfifsanad', discountPercentKey: 'darsadtakhfif' });
      assert.equal(get(r.input.header, 'takhfifsanad'), '20000');
      assert.equal(get(r.input.header, 'darsadtakhfif'), '12.5');
      assert.equal(r.input.rows[0].discount, 5000, 'rows keep their own discount');
      assert.ok(!r.warnings.some((w) => w.includes('document discount')));
    });

    it('or spread over the rows\' mabtakhfif in proportion, whole units, the rest on the largest row', () => {
      const details = [
        row({ productCode: 'A', count: 1, baseUnitPrice: 100000, totalDiscount: 0 }),
        row({ productCode: 'B', count: 2, baseUnitPrice: 100000, totalDiscount: 0 }),
        row({ productCode: 'C', count: 1, baseUnitPrice: 50000, totalDiscount: 10000 }),
      ];
      // rows after their own discounts: 100000, 200000, 40000 (total 340000); document discount 30001 − 10000 = 20001
      const r = mapQuoteToPreInvoice(quote({ discount: 30001, details }), { ...base, documentDiscount: 'rows' });
      const extra = r.input.rows.map((x) => x.discount);
      assert.equal(extra.reduce((a, b) => a + b, 0), 30001);
      assert.deepEqual(extra, [5882, 11765 + 1, 10000 + 2353]);
      assert.ok(!r.warnings.some((w) => w.includes('document discount')));
      assert.notEqual(r.checksum, mapQuoteToPreInvoice(quote({ discount: 30001, details }), base).checksum);
      // more than the rows are worth: refused, not sent
      assert.throws(
        () => mapQuoteToPreInvoice(quote({ discount: 400000, details }), { ...base, documentDiscount: 'rows' }),
        (e: unknown) => e instanceof SyncError && e.code === 'BAD_INPUT' && /larger/.test(e.message),
      );
    });

    it('refuses column names that are not usable or already filled', () => {
      for (const o of [{ vatPercentKey: 'codemoshtari' }, { rowVatKey: 'mabtakhfif' }, { vatAmountKey: 'x y' }, { vatPercentKey: 'a', discountKey: 'A' }, { documentDiscount: 'spread' as 'rows' }]) {
        assert.throws(() => mapQuoteToPreInvoice(quote(), { ...base, ...o }), (e: unknown) => e instanceof SyncError && e.code === 'CONFIG', JSON.stringify(o));
      }
    });
  });

  describe('suidFor', () => {
    it('is the first 32 hex of sha256, upper-case, per kind and id', () => {
      const expected = createHash('sha256').update(`siagh-sync:quote:${QUOTE_ID}`).digest('hex').slice(0, 32).toUpperCase();
      assert.equal(suidFor(QUOTE_ID, 'quote'), expected);
      assert.match(expected, /^[0-9A-F]{32}$/);
      assert.notEqual(suidFor(QUOTE_ID, 'invoice'), expected);
      assert.equal(suidFor(QUOTE_ID.toUpperCase(), 'quote'), expected); // same GUID, other case
      assert.equal(suidFor(` ${QUOTE_ID} `, 'quote'), expected);
    });

    it('refuses an empty id or unknown kind', () => {
      assert.throws(() => suidFor('', 'quote'), isErr('BAD_INPUT'));
      assert.throws(() => suidFor(QUOTE_ID, 'order' as 'quote'), isErr('BAD_INPUT'));
    });

    it('an invoice gets its own suid', () => {
      const r = mapQuoteToPreInvoice(quote({ docKind: 'invoice' }), base);
      assert.equal(r.input.suid, suidFor(QUOTE_ID, 'invoice'));
    });
  });

  describe('checksum', () => {
    const sum = (q: CrmQuote, o: PreInvoiceOptions = base) => mapQuoteToPreInvoice(q, o).checksum;

    it('is the same when only modifyDate (or key order) changes', () => {
      const a = sum(quote());
      assert.equal(sum(quote({ modifyDate: '2025-12-22T08:00:00' })), a);
      const reordered = Object.fromEntries(Object.entries(quote()).reverse()) as unknown as CrmQuote;
      assert.equal(sum(reordered), a);
      assert.match(a, /^[0-9a-f]{64}$/);
    });

    it('changes when a row price, quantity, item or a header value changes', () => {
      const a = sum(quote());
      assert.notEqual(sum(quote({ details: [row({ baseUnitPrice: 110000 })] })), a);
      assert.notEqual(sum(quote({ details: [row({ count: 2 })] })), a);
      assert.notEqual(sum(quote({ details: [row({ productCode: 'Product-2' })] })), a);
      assert.notEqual(sum(quote({ details: [row(), row()] })), a);
      assert.notEqual(sum(quote({ description: 'فوری' })), a);
      assert.notEqual(sum(quote(), { ...base, fiscalYear: 1405 }), a);
      assert.notEqual(sum(quote(), { ...base, customerCode: 8408 }), a);
    });
  });
});
