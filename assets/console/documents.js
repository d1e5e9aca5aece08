// Every GraphQL document the console sends, in one place. Each user value
// travels as a variable, never inside the query text.

const ACCOUNT = `id username email emailVerified role createdAt language guardianConsent
  acceptedPolicyVersion needsPolicyAcceptance
  consents { purpose granted policyVersion updatedAt }
  deletionRequest { id status requestedAt confirmedAt purgeAfter }`;

const PURPOSE = 'code title description required sensitive dataCategories';
const POLICY = `version publishedAt major summaryOfChanges text purposes { ${PURPOSE} }`;
const TICKET = `id reference category subject status canReply cannotReplyReason createdAt updatedAt
  messages { id author body createdAt }`;
const DELETION = 'id status requestedAt confirmedAt purgeAfter';

export const ME = `query Me { me { ${ACCOUNT} } }`;
export const POLICY_NOW = `query Policy($language: String) { policy(language: $language) { ${POLICY} } }`;
export const POLICY_VERSIONS = `query PolicyVersions($language: String) {
  policyVersions(language: $language) { ${POLICY} } }`;

export const SIGNUP = `mutation Signup($input: SignupInput!) { signup(input: $input) { accepted } }`;
export const LOGIN = `mutation Login($input: LoginInput!) { login(input: $input) { expiresAt account { ${ACCOUNT} } } }`;
export const LOGOUT = 'mutation Logout { logout }';
export const VERIFY_EMAIL = 'mutation VerifyEmail($token: String!) { verifyEmail(token: $token) }';
export const RESEND_VERIFICATION = 'mutation ResendVerification { resendVerificationEmail }';
export const REQUEST_PASSWORD_RESET = 'mutation RequestReset($email: String!) { requestPasswordReset(email: $email) }';
export const RESET_PASSWORD = `mutation ResetPassword($token: String!, $newPassword: String!) {
  resetPassword(token: $token, newPassword: $newPassword) }`;

export const SET_LANGUAGE = `mutation SetLanguage($language: String!) { setLanguage(language: $language) { ${ACCOUNT} } }`;
export const RECORD_CONSENT = `mutation RecordConsent($purpose: String!, $granted: Boolean!) {
  recordConsent(purpose: $purpose, granted: $granted) { purpose granted policyVersion updatedAt } }`;
export const ACCEPT_POLICY = `mutation AcceptPolicy($version: String!) { acceptPolicy(version: $version) { ${ACCOUNT} } }`;
export const CONSENT_HISTORY = `query ConsentHistory($after: String) {
  myConsentHistory(first: 200, after: $after) {
    nodes { id purpose granted policyVersion at source }
    pageInfo { hasNextPage endCursor } } }`;

export const MY_DATA = 'query MyData { myData }';

export const SESSIONS = 'query Sessions { mySessions { id createdAt lastSeenAt expiresAt userAgent current } }';
export const REVOKE_SESSION = 'mutation RevokeSession($id: ID!) { revokeSession(id: $id) }';
export const REVOKE_OTHER_SESSIONS = 'mutation RevokeOtherSessions { revokeOtherSessions }';
export const CHANGE_USERNAME = `mutation ChangeUsername($username: String!) { changeUsername(username: $username) { ${ACCOUNT} } }`;
export const CHANGE_EMAIL = `mutation ChangeEmail($newEmail: String!, $password: String!) {
  changeEmail(newEmail: $newEmail, password: $password) }`;
export const CHANGE_PASSWORD = `mutation ChangePassword($currentPassword: String!, $newPassword: String!) {
  changePassword(currentPassword: $currentPassword, newPassword: $newPassword) }`;

export const REQUEST_DELETION = `mutation RequestDeletion($input: RequestDeletionInput!) {
  requestAccountDeletion(input: $input) }`;
export const CONFIRM_DELETION = `mutation ConfirmDeletion($token: String!) { confirmAccountDeletion(token: $token) { ${DELETION} } }`;
export const CANCEL_DELETION = `mutation CancelDeletion($token: String!) { cancelAccountDeletion(token: $token) { ${DELETION} } }`;

export const GUARDIAN_REQUEST = `query GuardianRequest($token: String!) {
  guardianConsentRequest(token: $token) { username purposes { ${PURPOSE} } } }`;
export const GUARDIAN_ANSWER = `mutation GuardianAnswer($token: String!, $granted: Boolean!) {
  confirmGuardianConsent(token: $token, granted: $granted) }`;

export const MY_TICKETS = `query MyTickets { myTickets { ${TICKET} } }`;
export const CREATE_TICKET = `mutation CreateTicket($input: CreateTicketInput!) { createTicket(input: $input) { ${TICKET} } }`;
export const REPLY_TICKET = `mutation ReplyTicket($ticketId: ID!, $body: String!) {
  addTicketMessage(ticketId: $ticketId, body: $body) { ${TICKET} } }`;
export const CLOSE_TICKET = `mutation CloseTicket($ticketId: ID!) { closeTicket(ticketId: $ticketId) { ${TICKET} } }`;

export const ANNOUNCEMENTS = 'query Announcements { announcements { id kind title body publishedAt } }';
