/**
 * Shapes shared by the clients, the mappers and the nodes. The zod schemas that validate replies at
 * the boundary live beside each client (lib/siagh/schemas.ts, lib/crm/schemas.ts) and produce
 * these types; everything else in the core takes these types only.
 */

// ---------- both clients ----------

/** A client's connection for the operator's console: times and counts only, never a token or password. */
export interface ConnectionState {
  system: 'crm' | 'siagh';
  loggedIn: boolean;
  /** ISO time of the current session's login. */
  lastLoginAt?: string;
  /** Age of the current token or session (ms). */
  sessionAgeMs?: number;
  /** When the token expires / is renewed (ISO). */
  expiresAt?: string;
  /** No login is tried before this (ISO): a lock-out or refused credentials cool-down. */
  loginBlockedUntil?: string;
  /** Why logins wait (CRM_LOCKED_OUT, CRM_BAD_CREDENTIALS). */
  blockedBy?: string;
  logins: number;
}

// ---------- Siagh ----------

/** What the Siagh login reply tells us (never the session id: that stays inside the client). */
export interface SiaghSessionInfo {
  userName: string;
  branchName: string;
  branchCode?: number;
  fiscalYear: number;
  systemDate?: string;
  loggedInAt: number;
}

/** One record of GET /api/Sgh/GEN/Gn_Web_Users/GetAll (PascalCase as the server sends it). */
export interface SiaghContact {
  Code: number;
  Name: string | null;
  NickName?: string | null;
  NationalCode?: string | null;
  MobileNo?: string | null;
  MobileNo2?: string | null;
  TelNo?: string | null;
  TelNo2?: string | null;
  Email?: string | null;
  Address?: string | null;
  PostalCode?: string | null;
  CityCode?: string | null;
  CountryCode?: string | null;
  Gender?: string | null;
  Description?: string | null;
  WebSiteAddress?: string | null;
  IsActive?: boolean | null;
  IsAdminUser?: boolean | null;
  /** false = person, true = organization. */
  TowardType?: boolean | null;
  AccountPartyCode?: number | null;
  RecordId?: string | null;
  [k: string]: unknown;
}

/**
 * Contact form (2BFDA) fields, in send order: `[key, value]` with keys as Siagh expects them
 * (`gn_web_users.fullname`, …). The client adds the control segments (NickName, Param1).
 */
export type SiaghFieldList = Array<[key: string, value: string]>;

/** Result of a contact save. */
export interface SiaghContactSaveResult {
  code: number;
  /** Non-error notes from the reply (ErrSuccs / ErrWarning descriptions). */
  notes: string[];
}

/** Input of a sales pre-invoice (form 43D81). */
export interface PreInvoiceInput {
  /** `_In_Suid`: 32 upper-case hex, derived from the CRM id so a retry carries the same value. */
  suid: string;
  /** Header columns of `sl_sanad`, without the `sl_sanad.` prefix, in send order. */
  header: SiaghFieldList;
  rows: PreInvoiceRow[];
}

export interface PreInvoiceRow {
  itemCode: string;
  unitName: string;
  qty: number;
  price: number;
  discount: number;
  /** More row columns a setting asks for (e.g. the row's VAT), column → value. */
  extra?: Record<string, number | string>;
}

export interface PreInvoiceSaveResult {
  /** The printed document number, read from the Persian success message (undefined when absent). */
  documentNumber?: string;
  /** Siagh's internal id of the document (not the printed number). */
  returnCode: string;
  returnParams: string;
  notes: string[];
}

// ---------- CRM ----------

export type IdentityKind = 'person' | 'organization';

export interface CrmPhone {
  id?: string | null;
  default?: boolean | null;
  phoneType?: string | null;
  phoneNumber?: string | null;
  continuedNumber?: string | null;
  extension?: string | null;
}

export interface CrmAddress {
  id?: string | null;
  default?: boolean | null;
  country?: string | null;
  state?: string | null;
  city?: string | null;
  address?: string | null;
  zipCode?: string | null;
  [k: string]: unknown;
}

/** A person or organization as `person/get` / `organization/get` return it (camelCase). */
export interface CrmIdentity {
  crmId: string;
  /** Set by the client from the endpoint that returned it. */
  kind: IdentityKind;
  crmObjectTypeCode?: string | null;
  identityTypeName?: string | null;
  nickName?: string | null;
  firstName?: string | null;
  lastName?: string | null;
  customerNumber?: string | null;
  nationalCode?: string | null;
  economicCode?: string | null;
  registerNumber?: string | null;
  email?: string | null;
  website?: string | null;
  description?: string | null;
  gender?: string | null;
  phoneContacts?: CrmPhone[] | null;
  addressContacts?: CrmAddress[] | null;
  categories?: Array<{ key?: string | null; name?: string | null; id?: string | null }> | null;
  refId?: string | null;
  creatDate?: string | null;
  modifyDate?: string | null;
  [k: string]: unknown;
}

/** One row of `identity/search`. */
export interface CrmIdentitySummary {
  identityId: string;
  nickName: string | null;
  customerNo: string | null;
  [k: string]: unknown;
}

export interface CrmQuoteDetail {
  productCode?: string | null;
  productId?: string | null;
  productName?: string | null;
  productUnitTypeName?: string | null;
  count?: number | null;
  baseUnitPrice?: number | null;
  finalUnitPrice?: number | null;
  totalDiscount?: number | null;
  totalVat?: number | null;
  discountPercent?: number | null;
  detailDescription?: string | null;
  isService?: boolean | null;
  [k: string]: unknown;
}

/** A sales quote (`quote/sales/get`) or sales invoice (`invoice/sales/get`). */
export interface CrmQuote {
  crmId: string;
  /** Set by the client: which endpoint returned it. */
  docKind: 'quote' | 'invoice';
  crmObjectTypeCode?: string | null;
  identityId: string;
  subject?: string | null;
  description?: string | null;
  number?: string | null;
  totalValue?: number | null;
  discount?: number | null;
  discountPercent?: number | null;
  vat?: number | null;
  vatPercent?: number | null;
  finalValue?: number | null;
  creatDate?: string | null;
  modifyDate?: string | null;
  details: CrmQuoteDetail[];
  [k: string]: unknown;
}

/** Body of person/create and organization/create (update adds crmId). */
export interface CrmIdentityWrite {
  crmObjectTypeCode: IdentityKind;
  nickName: string;
  customerNumber?: string;
  firstName?: string;
  lastName?: string;
  nationalCode?: string;
  email?: string;
  website?: string;
  description?: string;
  refId?: string;
  phoneContacts?: CrmPhone[];
  addressContacts?: CrmAddress[];
  categories?: Array<{ key: string }>;
  [k: string]: unknown;
}
