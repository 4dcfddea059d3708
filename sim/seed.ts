/**
 * Deterministic, realistic Persian test data for both simulators (and for tests and benches).
 *
 * Every generator takes a seed and draws from its own mulberry32 stream, so the same seed always
 * gives deep-equal data, whatever else ran before. The data carries the untidiness of the real
 * systems (see docs/siagh-api.md and docs/crm-api.md): sparse Siagh Codes, Arabic ي/ك in a few names,
 * mobiles written with Persian digits or as +98…, ZWNJ names, missing fields, Persian and English
 * CRM phone-type labels, three customer-number schemes, and a few free texts containing `|`, `=`
 * or a line break (the characters that corrupt an unescaped Siagh `ctrlValues`, docs/known-faults.md#escaping).
 * `noise: false` turns the untidy spellings and the special characters off (uniqueness and
 * validity guarantees hold either way).
 *
 * Guarantees (for any seed):
 * - Siagh Codes strictly increase from `firstCode`, with gaps;
 * - every mobile and landline is unique by `phoneKey` within one generated set (Siagh rejects
 *   duplicate mobiles and phones), and so is every national id by `nationalIdKey`;
 * - every national id present passes `nationalIdValid` (correct check digit, known prefix);
 * - CRM customer numbers that are not empty are unique;
 * - quote totals are consistent: totalValue = Σ totalUnitPrice, discount = Σ totalDiscount,
 *   vat = Σ totalVat, finalValue = totalValue − discount + vat + toll (all whole rials).
 */
import type { CrmAddress, CrmIdentity, CrmPhone, CrmQuote, CrmQuoteDetail, SiaghContact } from '../lib/types';
import { nationalIdKey, phoneKey } from '../lib/text/normalize';

export interface SeedOptions {
  /** Default 1. */
  seed?: number;
  /**
   * Untidy real-world spellings and special characters in a few records (Arabic ي/ك, Persian
   * digits, +98 forms, `|`/`=`/line breaks in free text). Default true.
   */
  noise?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Random numbers

/** mulberry32: a small, fast 32-bit PRNG. Returns floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A separate stream per generator so that adding draws to one never shifts another. */
function streamFor(seed: number | undefined, salt: number): () => number {
  return rng(mix32((seed ?? 1) >>> 0, salt));
}

function mix32(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

type Rand = () => number;

const int = (r: Rand, min: number, max: number): number => min + Math.floor(r() * (max - min + 1));
const chance = (r: Rand, p: number): boolean => r() < p;
function pick<T>(r: Rand, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)] as T;
}
function pickWeighted<T extends { w: number }>(r: Rand, xs: readonly T[], total: number): T {
  let x = r() * total;
  for (const it of xs) {
    x -= it.w;
    if (x < 0) return it;
  }
  return xs[xs.length - 1] as T;
}
function digits(r: Rand, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String(Math.floor(r() * 10));
  return s;
}

const HEX = '0123456789abcdef';
/** A version-4 GUID drawn from `r` (lower-case, dashed, as both servers print them). */
export function randomGuid(r: Rand): string {
  let s = '';
  for (let i = 0; i < 32; i++) {
    let v = Math.floor(r() * 16);
    if (i === 12) v = 4;
    else if (i === 16) v = 8 + (v & 3);
    s += HEX[v];
    if (i === 7 || i === 11 || i === 15 || i === 19) s += '-';
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Text helpers

const FA_DIGITS = '۰۱۲۳۴۵۶۷۸۹';
function toPersianDigits(s: string): string {
  return s.replace(/[0-9]/g, (d) => FA_DIGITS[Number(d)] as string);
}
/** Persian ی/ک → Arabic ي/ك, as text typed on an Arabic keyboard layout is stored. */
function toArabicLetters(s: string): string {
  return s.replace(/ی/g, 'ي').replace(/ک/g, 'ك');
}

// ---------------------------------------------------------------------------------------------
// National ids

/**
 * Completes nine digits with the Iranian national-id check digit: r = Σ dᵢ·(10−i) mod 11, check =
 * r when r < 2, else 11 − r. Persian digits are accepted; the result is ASCII.
 */
export function nationalIdWithCheckDigit(nineDigits: string): string {
  const d = nineDigits.replace(/[۰-۹]/g, (c) => String(FA_DIGITS.indexOf(c)));
  if (!/^\d{9}$/.test(d)) throw new RangeError(`nationalIdWithCheckDigit needs exactly nine digits, got "${nineDigits}"`);
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(d[i]) * (10 - i);
  const rem = sum % 11;
  return d + String(rem < 2 ? rem : 11 - rem);
}

/** Prefixes (issuing office) that @persian-tools accepts; Tehran (00x) weighted up. */
const NID_PREFIXES = [
  '001', '002', '003', '004', '005', '006', '007', '008', '001', '002', '003', '004', '005', '006', '007', '008',
  '127', '128', '129', '228', '229', '092', '093', '094', '136', '137', '138', '020', '025', '031', '032', '041', '042',
  '061', '062', '063', '064', '065', '067', '068', '069', '070', '072', '073', '074', '075', '076', '077', '078', '079',
  '081', '082', '083', '084', '085', '086', '087', '088', '089', '090', '091', '096', '097', '098', '105', '106', '108',
];

function uniqueNationalId(r: Rand, used: Set<string>): string {
  for (;;) {
    const middle = digits(r, 6);
    if (middle === '000000') continue;
    const id = nationalIdWithCheckDigit(pick(r, NID_PREFIXES) + middle);
    if (/^(\d)\1{9}$/.test(id) || used.has(id)) continue;
    used.add(id);
    return id;
  }
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

interface FirstName { fa: string; en: string; male: boolean }
const FIRST_NAMES: readonly FirstName[] = [
  ['محمد', 'mohammad'], ['علی', 'ali'], ['حسین', 'hossein'], ['رضا', 'reza'], ['مهدی', 'mehdi'],
  ['محمدرضا', 'mohammadreza'], ['امیر', 'amir'], ['حسن', 'hasan'], ['عبدالله', 'abdollah'], ['مصطفی', 'mostafa'],
  ['سعید', 'saeed'], ['مجید', 'majid'], ['حمید', 'hamid'], ['جواد', 'javad'], ['امیرحسین', 'amirhossein'],
  ['علی‌اکبر', 'aliakbar'], ['کامران', 'kamran'], ['بهروز', 'behrouz'], ['فرهاد', 'farhad'], ['سیاوش', 'siavash'],
  ['کیوان', 'keyvan'], ['پیمان', 'peyman'], ['داریوش', 'dariush'], ['مسعود', 'masoud'], ['ابوالفضل', 'abolfazl'],
  ['یوسف', 'yousef'], ['اکبر', 'akbar'], ['کریم', 'karim'],
].map(([fa, en]) => ({ fa: fa as string, en: en as string, male: true }))
  .concat([
    ['فاطمه', 'fatemeh'], ['زهرا', 'zahra'], ['مریم', 'maryam'], ['سارا', 'sara'], ['نرگس', 'narges'],
    ['لیلا', 'leila'], ['مینا', 'mina'], ['الهام', 'elham'], ['پریسا', 'parisa'], ['نیلوفر', 'niloufar'],
    ['شیرین', 'shirin'], ['سمیرا', 'samira'], ['معصومه', 'masoumeh'], ['ریحانه', 'reyhaneh'], ['آزاده', 'azadeh'],
    ['هانیه', 'haniyeh'], ['نگار', 'negar'], ['مهسا', 'mahsa'], ['یاسمن', 'yasaman'], ['فاطمه‌زهرا', 'fatemehzahra'],
  ].map(([fa, en]) => ({ fa: fa as string, en: en as string, male: false })));

const LAST_NAMES: ReadonlyArray<readonly [fa: string, en: string]> = [
  ['احمدی', 'ahmadi'], ['محمدی', 'mohammadi'], ['حسینی', 'hosseini'], ['رضایی', 'rezaei'], ['کریمی', 'karimi'],
  ['موسوی', 'mousavi'], ['جعفری', 'jafari'], ['کاظمی', 'kazemi'], ['رحیمی', 'rahimi'], ['هاشمی', 'hashemi'],
  ['صادقی', 'sadeghi'], ['نوری', 'nouri'], ['قاسمی', 'ghasemi'], ['ابراهیمی', 'ebrahimi'], ['طاهری', 'taheri'],
  ['عباسی', 'abbasi'], ['اکبری', 'akbari'], ['یزدانی', 'yazdani'], ['شریفی', 'sharifi'], ['نیک‌نام', 'niknam'],
  ['حسین‌زاده', 'hosseinzadeh'], ['علی‌پور', 'alipour'], ['قلی‌زاده', 'gholizadeh'], ['شاه‌محمدی', 'shahmohammadi'],
  ['نیک‌بخت', 'nikbakht'], ['تهرانی', 'tehrani'], ['اصفهانی', 'esfahani'], ['شیرازی', 'shirazi'], ['کرمانی', 'kermani'],
  ['تبریزی', 'tabrizi'], ['فراهانی', 'farahani'], ['بهرامی', 'bahrami'], ['سلطانی', 'soltani'], ['مرادی', 'moradi'],
  ['زارعی', 'zarei'], ['کیانی', 'kiani'], ['فرجی', 'faraji'], ['نجفی', 'najafi'], ['امیری', 'amiri'],
  ['پاکزاد', 'pakzad'], ['میرزایی', 'mirzaei'], ['خسروی', 'khosravi'], ['دهقان', 'dehghan'], ['ملکی', 'maleki'],
];

const ORG_TYPES: readonly string[] = [
  'شرکت بازرگانی', 'شرکت', 'صنایع', 'گروه صنعتی', 'شرکت تولیدی', 'شرکت مهندسی', 'شرکت پخش', 'فروشگاه',
  'کارخانه', 'مؤسسه', 'شرکت حمل و نقل', 'تعاونی',
];
const ORG_CORES: ReadonlyArray<readonly [fa: string, en: string]> = [
  ['آریا گستر', 'aryagostar'], ['فولاد سپاهان', 'fouladsepahan'], ['پارس', 'pars'], ['نوین صنعت', 'novinsanat'],
  ['البرز', 'alborz'], ['کاوه', 'kaveh'], ['دماوند', 'damavand'], ['سپید', 'sepid'], ['پیشگامان', 'pishgaman'],
  ['آتیه', 'atiyeh'], ['مهر', 'mehr'], ['بنیان گاز', 'bonyangaz'], ['تک‌ران', 'takran'], ['زاگرس', 'zagros'],
  ['خلیج فارس', 'khalijfars'], ['سیمان شرق', 'simansharq'], ['نیک‌اندیشان', 'nikandishan'], ['پویا', 'pouya'],
  ['ستاره کویر', 'setarehkavir'], ['آسیا', 'asia'], ['کیمیا', 'kimia'], ['رایان', 'rayan'], ['پرتو', 'partov'],
  ['صبا', 'saba'], ['گاز گستر', 'gazgostar'], ['آبادگران', 'abadgaran'], ['سازه', 'sazeh'], ['ایمن لوله', 'imanlooleh'],
];
const ORG_QUALIFIERS: readonly string[] = ['', '', '', '', 'نوین', 'پارسیان', 'ایرانیان', 'شرق', 'جنوب', 'آذر', 'سپاهان'];
const ORG_SUFFIXES: readonly string[] = ['', '', '', '', '', '', ' (سهامی خاص)', ' و شرکا'];

interface City { name: string; province: string; area: string; postal: string; w: number }
const CITIES: readonly City[] = [
  { name: 'تهران', province: 'تهران', area: '021', postal: '1', w: 40 },
  { name: 'اصفهان', province: 'اصفهان', area: '031', postal: '8', w: 9 },
  { name: 'شیراز', province: 'فارس', area: '071', postal: '7', w: 6 },
  { name: 'مشهد', province: 'خراسان رضوی', area: '051', postal: '9', w: 7 },
  { name: 'تبریز', province: 'آذربایجان شرقی', area: '041', postal: '5', w: 5 },
  { name: 'کرج', province: 'البرز', area: '026', postal: '3', w: 5 },
  { name: 'قم', province: 'قم', area: '025', postal: '3', w: 3 },
  { name: 'اهواز', province: 'خوزستان', area: '061', postal: '6', w: 3 },
  { name: 'کرمانشاه', province: 'کرمانشاه', area: '083', postal: '6', w: 2 },
  { name: 'رشت', province: 'گیلان', area: '013', postal: '4', w: 3 },
  { name: 'یزد', province: 'یزد', area: '035', postal: '8', w: 2 },
  { name: 'کرمان', province: 'کرمان', area: '034', postal: '7', w: 2 },
  { name: 'ارومیه', province: 'آذربایجان غربی', area: '044', postal: '5', w: 2 },
  { name: 'ساری', province: 'مازندران', area: '011', postal: '4', w: 2 },
  { name: 'همدان', province: 'همدان', area: '081', postal: '6', w: 2 },
  { name: 'اراک', province: 'مرکزی', area: '086', postal: '3', w: 2 },
  { name: 'بندرعباس', province: 'هرمزگان', area: '076', postal: '7', w: 2 },
  { name: 'قزوین', province: 'قزوین', area: '028', postal: '3', w: 2 },
];
const CITY_WEIGHT = CITIES.reduce((s, c) => s + c.w, 0);

const STREETS: readonly string[] = [
  'ولیعصر', 'انقلاب', 'آزادی', 'شریعتی', 'مطهری', 'فردوسی', 'امام خمینی', 'چهارباغ', 'زند', 'بهار', 'نیاوران',
  'پاسداران', 'سعادت‌آباد', 'جمهوری', 'کارگر شمالی', 'طالقانی', 'حافظ', 'سعدی', 'بهشتی', 'کریمخان زند',
];
const ALLEYS: readonly string[] = ['گلستان', 'نسترن', 'یاس', 'لاله', 'بهار', 'شقایق', 'صنوبر', 'اقاقیا', 'مهر', 'ارغوان'];

const MOBILE_PREFIXES: readonly string[] = [
  '0912', '0912', '0912', '0913', '0914', '0915', '0916', '0917', '0918', '0919', '0935', '0936', '0937', '0938',
  '0939', '0901', '0902', '0903', '0930', '0933', '0990', '0991', '0920', '0921',
];
const EMAIL_DOMAINS: readonly string[] = ['gmail.com', 'gmail.com', 'gmail.com', 'yahoo.com', 'chmail.ir', 'outlook.com', 'mail.ir'];

const SIAGH_DESCRIPTIONS: readonly string[] = [
  'مشتری عمده', 'خرید اقساطی', 'همکار فروش', 'معرفی از نمایشگاه', 'مشتری قدیمی', 'تسویه ماهانه',
  'نماینده فروش منطقه', 'فقط خرید نقدی', 'پیگیری توسط واحد فروش',
];
const NOISY_DESCRIPTIONS: readonly string[] = [
  'تخفیف 5% | پرداخت نقدی', 'کد قدیم=452', 'ارسال با باربری\nتحویل درب انبار', 'شرایط: نقد|چک',
];

// ---------------------------------------------------------------------------------------------
// Shared record builders

interface Ctx {
  r: Rand;
  noise: boolean;
  phones: Set<string>;
  nids: Set<string>;
}

function newMobile(ctx: Ctx): string {
  for (;;) {
    const m = pick(ctx.r, MOBILE_PREFIXES) + digits(ctx.r, 7);
    const k = phoneKey(m) as string;
    if (ctx.phones.has(k)) continue;
    ctx.phones.add(k);
    return m;
  }
}

/** The written form of a mobile: mostly 09…, a few with Persian digits, +98, spaces or no 0. */
function writeMobile(ctx: Ctx, m: string): string {
  if (!ctx.noise) return m;
  const x = ctx.r();
  if (x < 0.03) return toPersianDigits(m);
  if (x < 0.06) return '+98' + m.slice(1);
  if (x < 0.075) return `${m.slice(0, 4)} ${m.slice(4, 7)} ${m.slice(7)}`;
  if (x < 0.085) return m.slice(1);
  return m;
}

function newLandline(ctx: Ctx, city: City): string {
  for (;;) {
    const t = city.area + String(int(ctx.r, 2, 8)) + digits(ctx.r, 7);
    const k = phoneKey(t) as string;
    if (ctx.phones.has(k)) continue;
    ctx.phones.add(k);
    return t;
  }
}

function writeLandline(ctx: Ctx, t: string): string {
  if (!ctx.noise) return t;
  const x = ctx.r();
  if (x < 0.08) return `${t.slice(0, 3)}-${t.slice(3)}`;
  if (x < 0.11) return toPersianDigits(t);
  return t;
}

function newAddress(ctx: Ctx, city: City): string {
  const r = ctx.r;
  let a = `${city.name}، خیابان ${pick(r, STREETS)}`;
  if (chance(r, 0.6)) a += `، کوچه ${chance(r, 0.5) ? pick(r, ALLEYS) : String(int(r, 1, 40))}`;
  a += `، پلاک ${int(r, 1, 250)}`;
  if (chance(r, 0.35)) a += `، طبقه ${int(r, 1, 9)}، واحد ${int(r, 1, 30)}`;
  if (ctx.noise && chance(r, 0.3)) a = toPersianDigits(a);
  return a;
}

function newPostalCode(r: Rand, city: City): string {
  // Iranian postal codes: the first five digits avoid 0 and 2; the first names the region.
  const safe = '13456789';
  let s = city.postal;
  for (let i = 0; i < 4; i++) s += safe[Math.floor(r() * safe.length)];
  return s + digits(r, 5);
}

function emailFor(r: Rand, first: string, last: string): string {
  const sep = pick(r, ['.', '_', '']);
  const tail = chance(r, 0.6) ? String(int(r, 1, 99)) : '';
  const local = chance(r, 0.8) ? `${first}${sep}${last}${tail}` : `${first[0]}${last}${tail}`;
  return `${local}@${pick(r, EMAIL_DOMAINS)}`;
}

interface PersonName { first: FirstName; last: readonly [string, string] }
interface OrgName { fa: string; slug: string }

function personName(r: Rand): PersonName {
  return { first: pick(r, FIRST_NAMES), last: pick(r, LAST_NAMES) };
}
function orgName(r: Rand): OrgName {
  const core = pick(r, ORG_CORES);
  let q = pick(r, ORG_QUALIFIERS);
  if (q && core[0].includes(q)) q = '';
  return { fa: `${pick(r, ORG_TYPES)} ${core[0]}${q ? ' ' + q : ''}${pick(r, ORG_SUFFIXES)}`, slug: core[1] };
}

/** A Jalali date `YYYY/MM/DD` `dayIndex` days after 1398/01/01 (365-day years, real month lengths). */
function jalaliDate(dayIndex: number): string {
  const y = 1398 + Math.floor(dayIndex / 365);
  let d = dayIndex % 365;
  let m = 1;
  for (;;) {
    const len = m <= 6 ? 31 : m <= 11 ? 30 : 29;
    if (d < len) break;
    d -= len;
    m++;
  }
  return `${y}/${String(m).padStart(2, '0')}/${String(d + 1).padStart(2, '0')}`;
}

// ---------------------------------------------------------------------------------------------
// Siagh contacts

/**
 * Siagh contacts as GET /api/Sgh/GEN/Gn_Web_Users/GetAll returns them (PascalCase, every field of
 * the real record, nulls where empty). Codes increase from `firstCode` (default 1) with gaps; the
 * first `admins` (default 1) are system users (IsAdminUser true, persons). About 80% persons
 * (TowardType false), 20% organizations (true). `Password` is always null and `tmpid` is absent
 * (GetAll does not return it).
 */
export function seedSiaghContacts(
  n: number,
  opts: SeedOptions & { firstCode?: number; admins?: number } = {},
): SiaghContact[] {
  const r = streamFor(opts.seed, 0x51a6);
  const ctx: Ctx = { r, noise: opts.noise ?? true, phones: new Set(), nids: new Set() };
  const admins = Math.max(0, Math.min(n, opts.admins ?? 1));
  const out: SiaghContact[] = new Array(n);
  let code = Math.trunc(opts.firstCode ?? 1);
  let accountParty = 11000 + int(r, 0, 99);
  const span = 6 * 365 + 240; // 1398/01/01 … ~1404/09
  let regDay = 0; // registration dates never decrease with the Code

  for (let i = 0; i < n; i++) {
    if (i > 0) code += chance(r, 0.85) ? 1 : int(r, 2, 20);
    const admin = i < admins;
    const org = !admin && chance(r, 0.2);
    const city = pickWeighted(r, CITIES, CITY_WEIGHT);
    const arabic = ctx.noise && chance(r, 0.03);

    let name: string;
    let gender: string | null = null;
    let preName: string | null = null;
    let email: string | null = null;
    let website: string | null = null;
    let nationalCode: string | null = null;
    let nickName: string | null = null;
    if (org) {
      const o = orgName(r);
      name = o.fa;
      if (chance(r, 0.55)) email = `${pick(r, ['info', 'sales', 'office', 'admin'])}@${o.slug}${pick(r, ['.ir', '.com', '.co.ir'])}`;
      if (chance(r, 0.4)) website = `www.${o.slug}.ir`;
      if (chance(r, 0.2)) nickName = o.fa.split(' ').slice(-2).join(' ');
    } else {
      const p = personName(r);
      name = `${p.first.fa} ${p.last[0]}`;
      gender = chance(r, 0.9) ? (p.first.male ? '1' : '0') : null;
      if (chance(r, 0.25)) preName = p.first.male ? 'آقای' : 'خانم';
      if (chance(r, 0.6)) email = emailFor(r, p.first.en, p.last[1]);
      if (chance(r, 0.85)) nationalCode = uniqueNationalId(r, ctx.nids);
      if (nationalCode && ctx.noise && chance(r, 0.03)) nationalCode = toPersianDigits(nationalCode);
      if (chance(r, 0.1)) nickName = p.last[0];
    }
    if (ctx.noise && chance(r, 0.01)) name += ' '; // trailing blank typed by an operator
    if (arabic) {
      name = toArabicLetters(name);
      if (nickName) nickName = toArabicLetters(nickName);
    }

    const hasMobile = admin || chance(r, org ? 0.6 : 0.9);
    const mobile = hasMobile ? writeMobile(ctx, newMobile(ctx)) : null;
    const mobile2 = hasMobile && chance(r, 0.05) ? writeMobile(ctx, newMobile(ctx)) : null;
    const tel = chance(r, org ? 0.9 : 0.55) ? writeLandline(ctx, newLandline(ctx, city)) : null;
    const tel2 = tel && org && chance(r, 0.3) ? writeLandline(ctx, newLandline(ctx, city)) : null;
    let address: string | null = chance(r, org ? 0.9 : 0.7) ? newAddress(ctx, city) : null;
    if (address && arabic) address = toArabicLetters(address);
    const postal = address && chance(r, 0.7) ? newPostalCode(r, city) : null;

    let description: string | null = null;
    if (admin) description = 'کاربر سیستم';
    else if (ctx.noise && chance(r, 0.01)) description = pick(r, NOISY_DESCRIPTIONS);
    else if (chance(r, 0.15)) description = pick(r, SIAGH_DESCRIPTIONS);

    let accountPartyCode: number | null = null;
    if (!admin && chance(r, 0.35)) {
      accountParty += chance(r, 0.9) ? 1 : int(r, 2, 9);
      accountPartyCode = accountParty;
    }
    regDay = Math.max(regDay, Math.min(span - 1, Math.floor((i / Math.max(1, n)) * span) + int(r, 0, 3)));

    out[i] = {
      RecordId: randomGuid(r),
      Code: code,
      Name: name,
      NickName: nickName,
      PreName: preName,
      FatherName: null,
      NationalCode: nationalCode,
      MobileNo: mobile,
      MobileNo2: mobile2,
      TelNo: tel,
      TelNo2: tel2,
      Email: email,
      Email2: null,
      Address: address,
      PostalCode: postal,
      CityCode: null,
      CountryCode: null,
      Gender: gender,
      BirthDate: null,
      RegDate: jalaliDate(regDay),
      ExpireDate: null,
      Description: description,
      WebSiteAddress: website,
      OrgField: null,
      IsActive: admin ? true : chance(r, 0.94),
      IsAdminUser: admin,
      TowardType: org,
      ParentCode: null,
      AccountPartyCode: accountPartyCode,
      Coin: null,
      GeographicCode: null,
      FraternityCode: null,
      JobTypeCode: null,
      TrackingCode: null,
      CodeRoshd: null,
      RepresentativeId: null,
      Confirm: true,
      GiveCoinToParentCode: false,
      HasDisCount: false,
      img: null,
      Picture: null,
      Password: null,
    };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// CRM identities

const MOBILE_TYPES: readonly string[] = ['موبایل', 'موبایل', 'همراه', 'Mobile', 'Mobile'];
const OFFICE_TYPES: readonly string[] = ['محل کار', 'محل کار', 'Office', 'Office', 'تلفن ثابت'];
const HOME_TYPES: readonly string[] = ['منزل', 'Home'];
const CRM_DESCRIPTIONS: readonly string[] = [
  'مشتری بالقوه از نمایشگاه', 'تماس از طریق وب‌سایت', 'مشتری عمده', 'معرفی توسط همکار', 'پیگیری برای پیش فاکتور',
];

export type SeedCrmIdentity = Partial<CrmIdentity> & { kind: 'person' | 'organization' };

/**
 * CRM persons and organizations shaped like person/get and organization/get, without what the
 * simulator assigns (crmId, creatDate, modifyDate). `organizationShare` defaults to 0.2.
 * customerNumber: ~40% in the Siagh-import scheme `100-(Code+1000)` (those also carry the
 * `syaghcontact` category and an "Imported from Siagh" description), ~35% CRM-native
 * `1403-000123`, ~25% empty.
 */
export function seedCrmIdentities(
  n: number,
  opts: SeedOptions & { organizationShare?: number } = {},
): SeedCrmIdentity[] {
  const r = streamFor(opts.seed, 0xc7a1);
  const ctx: Ctx = { r, noise: opts.noise ?? true, phones: new Set(), nids: new Set() };
  const orgShare = opts.organizationShare ?? 0.2;
  const out: SeedCrmIdentity[] = new Array(n);
  let nativeSeq = int(r, 1, 50);
  let siaghCode = int(r, 8000, 8300);

  for (let i = 0; i < n; i++) {
    const org = chance(r, orgShare);
    const city = pickWeighted(r, CITIES, CITY_WEIGHT);
    const rec: SeedCrmIdentity = {
      kind: org ? 'organization' : 'person',
      crmObjectTypeCode: org ? 'organization' : 'person',
      identityTypeName: org ? 'حقوقی' : 'حقیقی',
    };

    if (org) {
      const o = orgName(r);
      rec.nickName = o.fa;
      rec.email = chance(r, 0.6) ? `${pick(r, ['info', 'sales', 'office'])}@${o.slug}.ir` : '';
      rec.website = chance(r, 0.4) ? `https://${o.slug}.ir` : '';
      rec.nationalCode = null;
      rec.economicCode = chance(r, 0.4) ? '4' + digits(r, 11) : null;
      rec.registerNumber = chance(r, 0.5) ? String(int(r, 1000, 599999)) : null;
    } else {
      const p = personName(r);
      rec.firstName = p.first.fa;
      rec.lastName = p.last[0];
      rec.nickName = `${p.first.fa} ${p.last[0]}`;
      rec.email = chance(r, 0.55) ? emailFor(r, p.first.en, p.last[1]) : '';
      rec.website = '';
      rec.nationalCode = chance(r, 0.75) ? uniqueNationalId(r, ctx.nids) : chance(r, 0.5) ? '' : null;
      if (rec.nationalCode && ctx.noise && chance(r, 0.03)) rec.nationalCode = toPersianDigits(rec.nationalCode);
    }
    if (ctx.noise && chance(r, 0.03)) {
      rec.nickName = toArabicLetters(rec.nickName as string);
      if (rec.lastName) rec.lastName = toArabicLetters(rec.lastName);
    }

    // Customer number: Siagh-import scheme, CRM-native, or empty.
    const x = r();
    let imported = false;
    if (x < 0.4) {
      siaghCode += chance(r, 0.85) ? 1 : int(r, 2, 20);
      rec.customerNumber = `100-${siaghCode + 1000}`;
      imported = true;
    } else if (x < 0.75) {
      nativeSeq += chance(r, 0.9) ? 1 : int(r, 2, 5);
      rec.customerNumber = `${pick(r, ['1402', '1403', '1403', '1404'])}-${String(nativeSeq).padStart(6, '0')}`;
    } else {
      rec.customerNumber = '';
    }

    // Phones.
    const phones: CrmPhone[] = [];
    if (chance(r, org ? 0.55 : 0.9)) {
      phones.push({ id: randomGuid(r), default: true, phoneType: pick(r, MOBILE_TYPES), phoneNumber: writeMobile(ctx, newMobile(ctx)), continuedNumber: null, extension: null });
    }
    if (chance(r, org ? 0.9 : 0.4)) {
      phones.push({
        id: randomGuid(r),
        default: phones.length === 0,
        phoneType: pick(r, OFFICE_TYPES),
        phoneNumber: writeLandline(ctx, newLandline(ctx, city)),
        continuedNumber: null,
        extension: org && chance(r, 0.3) ? String(int(r, 100, 450)) : null,
      });
    }
    if (!org && chance(r, 0.1)) {
      phones.push({ id: randomGuid(r), default: phones.length === 0, phoneType: pick(r, HOME_TYPES), phoneNumber: writeLandline(ctx, newLandline(ctx, city)), continuedNumber: null, extension: null });
    }
    if (!org && chance(r, 0.05)) {
      phones.push({ id: randomGuid(r), default: false, phoneType: pick(r, MOBILE_TYPES), phoneNumber: writeMobile(ctx, newMobile(ctx)), continuedNumber: null, extension: null });
    }
    rec.phoneContacts = phones;

    // Addresses.
    const addresses: CrmAddress[] = [];
    if (chance(r, org ? 0.85 : 0.6)) {
      addresses.push({
        id: randomGuid(r),
        default: true,
        country: 'ایران',
        state: city.province,
        city: city.name,
        address: newAddress(ctx, city),
        zipCode: chance(r, 0.6) ? newPostalCode(r, city) : '',
      });
    }
    rec.addressContacts = addresses;

    if (imported) rec.description = `Imported from Siagh (Code: ${siaghCode})`;
    else if (ctx.noise && chance(r, 0.01)) rec.description = pick(r, NOISY_DESCRIPTIONS);
    else rec.description = chance(r, 0.2) ? pick(r, CRM_DESCRIPTIONS) : '';
    rec.categories = imported ? [{ key: 'syaghcontact', name: 'مخاطب سیاق' }] : [];
    out[i] = rec;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Products and quotes

export interface SeedProduct {
  productCode: string;
  productId: string;
  productName: string;
  productUnitTypeName: 'عدد' | 'قطعه' | 'کیلوگرم' | 'متر';
  /** List price in rial, a round thousand. */
  listPrice: number;
  isService: boolean;
}

const PRODUCT_TABLE: ReadonlyArray<readonly [string, SeedProduct['productUnitTypeName'], number, boolean?]> = [
  ['کنتور گاز G4', 'عدد', 18_500_000],
  ['رگولاتور گاز خانگی', 'عدد', 6_200_000],
  ['شیر توپی برنجی نیم اینچ', 'عدد', 850_000],
  ['لوله فولادی یک اینچ', 'متر', 1_250_000],
  ['لوله پلی‌اتیلن ۲۵ میلی‌متر', 'متر', 320_000],
  ['اتصال زانویی ۹۰ درجه', 'قطعه', 145_000],
  ['بست لوله گالوانیزه', 'قطعه', 48_000],
  ['فیلتر گاز صنعتی', 'عدد', 27_000_000],
  ['پیچ و مهره M12', 'کیلوگرم', 1_100_000],
  ['الکترود جوش ۲.۵', 'کیلوگرم', 2_300_000],
  ['نوار عایق لوله', 'متر', 95_000],
  ['گیج فشار ۰ تا ۱۰ بار', 'عدد', 3_400_000],
  ['شیر اطمینان گاز', 'عدد', 9_800_000],
  ['کابل برق ۲.۵', 'متر', 210_000],
  ['رنگ ضد زنگ', 'کیلوگرم', 1_450_000],
  ['فلنج فولادی دو اینچ', 'قطعه', 1_900_000],
  ['واشر نسوز', 'قطعه', 65_000],
  ['سیم جوش', 'کیلوگرم', 2_050_000],
  ['ورق گالوانیزه ۰.۵', 'کیلوگرم', 780_000],
  ['کنتور گاز G6', 'عدد', 32_000_000],
  ['شیر قطع‌کن زلزله', 'عدد', 12_500_000],
  ['خدمات نصب و راه‌اندازی', 'عدد', 15_000_000, true],
  ['خدمات بازرسی و تست', 'عدد', 8_000_000, true],
  ['حمل و نقل کالا', 'عدد', 4_500_000, true],
  ['تعمیر رگولاتور', 'عدد', 2_800_000, true],
];

let productCache: SeedProduct[] | undefined;

/** The product catalogue (the same for every seed): `Product-1` … `Product-25`. */
export function seedProducts(): SeedProduct[] {
  if (!productCache) {
    const r = rng(0x9a0d);
    productCache = PRODUCT_TABLE.map(([name, unit, price, service], i) => ({
      productCode: `Product-${i + 1}`,
      productId: randomGuid(r),
      productName: name,
      productUnitTypeName: unit,
      listPrice: price,
      isService: service === true,
    }));
  }
  return productCache.map((p) => ({ ...p }));
}

const QUOTE_DESCRIPTIONS: readonly string[] = ['تحویل یک هفته پس از پرداخت', 'اعتبار پیش فاکتور ۷ روز', 'ارسال به انبار مرکزی'];

/** The subject the CRM writes itself: `<nickName>(مشتری) - <customerNumber>(پیش فاکتور فروش)`. */
export function quoteSubject(nickName: string, customerNumber: string): string {
  return `${nickName}(مشتری) - ${customerNumber}(پیش فاکتور فروش)`;
}

/**
 * Sales quotes (quote/sales/get shape without crmId and dates) for the given identities, picked at
 * random. The subject uses the identity's nickName and customerNumber when `identities` supplies
 * them; otherwise a name and number derived from the id (stable for an id and seed). 1–4 distinct
 * products per quote; ~15% of lines carry a discount; VAT 9% on the discounted amount.
 */
export function seedQuotes(
  identityIds: string[],
  n: number,
  opts: SeedOptions & {
    identities?: ReadonlyArray<{ crmId?: string | null; nickName?: string | null; customerNumber?: string | null }>;
  } = {},
): Array<Partial<CrmQuote>> {
  if (n > 0 && identityIds.length === 0) throw new RangeError('seedQuotes needs at least one identity id');
  const r = streamFor(opts.seed, 0x9e07);
  const noise = opts.noise ?? true;
  const products = seedProducts();
  const known = new Map<string, { nickName: string; customerNumber: string }>();
  for (const it of opts.identities ?? []) {
    if (it.crmId) known.set(it.crmId, { nickName: it.nickName ?? '', customerNumber: it.customerNumber ?? '' });
  }
  const invented = (id: string): { nickName: string; customerNumber: string } => {
    const ir = rng(mix32(hashString(id), (opts.seed ?? 1) >>> 0));
    const org = chance(ir, 0.3);
    const nickName = org ? orgName(ir).fa : ((p) => `${p.first.fa} ${p.last[0]}`)(personName(ir));
    const customerNumber = chance(ir, 0.8) ? `100-${int(ir, 9000, 10500)}` : '';
    return { nickName, customerNumber };
  };

  const out: Array<Partial<CrmQuote>> = new Array(n);
  for (let q = 0; q < n; q++) {
    const identityId = pick(r, identityIds);
    let who = known.get(identityId);
    if (!who) {
      who = invented(identityId);
      known.set(identityId, who);
    }
    const lines = int(r, 1, 4);
    const chosen = new Set<number>();
    while (chosen.size < lines) chosen.add(int(r, 0, products.length - 1));

    const details: CrmQuoteDetail[] = [];
    let totalValue = 0;
    let discount = 0;
    let vat = 0;
    for (const idx of chosen) {
      const p = products[idx] as SeedProduct;
      const base = Math.max(1000, Math.round((p.listPrice * (0.9 + r() * 0.2)) / 1000) * 1000);
      const count = p.productUnitTypeName === 'کیلوگرم' || p.productUnitTypeName === 'متر'
        ? int(r, 1, 400) / 2
        : p.isService ? 1 : int(r, 1, 50);
      const discountPercent = chance(r, 0.15) ? pick(r, [5, 10, 15]) : 0;
      const totalUnitPrice = Math.round(base * count);
      const totalDiscount = Math.round((totalUnitPrice * discountPercent) / 100);
      const totalVat = Math.round(((totalUnitPrice - totalDiscount) * 9) / 100);
      const discountedUnit = base - Math.round((base * discountPercent) / 100);
      details.push({
        productCode: p.productCode,
        productId: p.productId,
        productName: p.productName,
        isService: p.isService,
        productUnitTypeName: p.productUnitTypeName,
        count,
        returnedCount: 0,
        baseUnitPrice: base,
        finalUnitPrice: discountedUnit + Math.round((discountedUnit * 9) / 100),
        totalUnitPrice,
        totalDiscount,
        totalVat,
        totalToll: 0,
        discountPercent,
        detailDescription: '',
        serial: null,
      });
      totalValue += totalUnitPrice;
      discount += totalDiscount;
      vat += totalVat;
    }

    let description = '';
    if (noise && chance(r, 0.02)) description = pick(r, NOISY_DESCRIPTIONS);
    else if (chance(r, 0.15)) description = pick(r, QUOTE_DESCRIPTIONS);

    out[q] = {
      crmObjectTypeCode: chance(r, 0.85) ? 'PI_5' : 'Productinvoice',
      crmObjectTypeIndex: 8,
      identityId,
      subject: quoteSubject(who.nickName, who.customerNumber),
      description,
      number: '',
      refId: '',
      priceListName: '',
      quoteType: 'Quote',
      quoteDate: null,
      expireDate: null,
      totalValue,
      discount,
      vat,
      toll: 0,
      finalValue: totalValue - discount + vat,
      additionalCosts: null,
      vatPercent: 9,
      tollPercent: 0,
      discountPercent: 0,
      totalDiscountPercent: 0,
      billableObjectStateIndex: 1,
      extendedProperties: [],
      tags: [],
      details,
    };
  }
  return out;
}
