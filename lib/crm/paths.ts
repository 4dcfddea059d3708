/** The CRM REST API v2 endpoints this package calls (docs/crm-api.md). */
export const CRM_PATHS = {
  login: '/api/v2/auth/login',
  search: '/api/v2/crmobject/identity/search',
  personGet: '/api/v2/crmobject/person/get',
  personCreate: '/api/v2/crmobject/person/create',
  personUpdate: '/api/v2/crmobject/person/update',
  organizationGet: '/api/v2/crmobject/organization/get',
  organizationCreate: '/api/v2/crmobject/organization/create',
  organizationUpdate: '/api/v2/crmobject/organization/update',
  personFind: '/api/v2/crmobject/person/find',
  organizationFind: '/api/v2/crmobject/organization/find',
  quoteGet: '/api/v2/crmobject/quote/sales/get',
  invoiceGet: '/api/v2/crmobject/invoice/sales/get',
  quoteFind: '/api/v2/crmobject/quote/sales/find',
  invoiceFind: '/api/v2/crmobject/invoice/sales/find',
} as const;
