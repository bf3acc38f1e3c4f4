//! Accounts and their API tokens.

use super::core::Service;
use super::error::{reason, ServiceError};
use super::model::{AccountRec, TokenRec, ADMIN_ACCOUNT};
use super::store;
use super::token;
use super::{AccountView, NewToken, TokenView};
use crate::info::{now_unix, rfc3339};
use crate::AppDataChange;

fn token_view(t: &TokenRec) -> TokenView {
    TokenView {
        id: t.id.clone(),
        account: t.account.clone(),
        created_at: rfc3339(t.created_unix),
        revoked: t.revoked,
    }
}

/// A token record and the secret it was made from, not yet committed.
pub(crate) struct TokenDraft {
    pub rec: TokenRec,
    pub token: String,
}

impl TokenDraft {
    pub fn change(&self) -> Result<AppDataChange, ServiceError> {
        store::put(&store::token_key(&self.rec.hash), &self.rec)
    }

    pub fn issued(self) -> NewToken {
        NewToken {
            view: token_view(&self.rec),
            token: self.token,
        }
    }
}

impl Service {
    pub fn create_account(&self, name: &str) -> Result<AccountView, ServiceError> {
        let _admin = self.admin.lock();
        let rec = self.draft_account(name)?;
        store::commit(
            &self.pool,
            vec![store::put(&store::account_key(name), &rec)?],
        )?;
        let view = Self::account_view(&rec);
        self.reg.lock().accounts.insert(name.to_string(), rec);
        Ok(view)
    }

    /// A new account's record, checked; the caller holds the admin lock.
    pub(crate) fn draft_account(&self, name: &str) -> Result<AccountRec, ServiceError> {
        crate::validate_name("account name", name)
            .map_err(|e| ServiceError::field("name", reason(&e)))?;
        if self.reg.lock().accounts.contains_key(name) {
            return Err(ServiceError::field(
                "name",
                format!("An account named {name} already exists."),
            ));
        }
        Ok(AccountRec {
            name: name.to_string(),
            created_unix: now_unix(),
        })
    }

    pub fn list_accounts(&self) -> Vec<AccountView> {
        let reg = self.reg.lock();
        reg.accounts.values().map(Self::account_view).collect()
    }

    /// A new token for `account`; its secret is in the result and nowhere else.
    pub fn create_token(&self, account: &str) -> Result<NewToken, ServiceError> {
        let _admin = self.admin.lock();
        if !self.reg.lock().accounts.contains_key(account) {
            return Err(ServiceError::not_found(&format!("Account {account}")));
        }
        let draft = self.draft_token(account)?;
        store::commit(&self.pool, vec![draft.change()?])?;
        self.keep_token(&draft.rec);
        Ok(draft.issued())
    }

    /// A new token for `account`, not yet committed; the caller holds the
    /// admin lock, so the drawn id stays unique until the commit.
    pub(crate) fn draft_token(&self, account: &str) -> Result<TokenDraft, ServiceError> {
        // Ids are a hash prefix; draw again on the rare collision so an id
        // names one token.
        let secret = loop {
            let s = token::generate()?;
            if !self.reg.lock().tokens.contains_key(&token::id_of(&s.hash)) {
                break s;
            }
        };
        Ok(TokenDraft {
            rec: TokenRec {
                id: token::id_of(&secret.hash),
                account: account.to_string(),
                hash: token::hex(&secret.hash),
                created_unix: now_unix(),
                revoked: false,
            },
            token: secret.token,
        })
    }

    /// Make a committed token usable.
    pub(crate) fn keep_token(&self, rec: &TokenRec) {
        self.reg.lock().tokens.insert(rec.id.clone(), rec.clone());
    }

    pub fn list_tokens(&self, account: &str) -> Result<Vec<TokenView>, ServiceError> {
        let reg = self.reg.lock();
        if !reg.accounts.contains_key(account) {
            return Err(ServiceError::not_found(&format!("Account {account}")));
        }
        Ok(reg
            .tokens
            .values()
            .filter(|t| t.account == account)
            .map(token_view)
            .collect())
    }

    /// Revoke a token named by its id, a unique prefix of its id, or the
    /// token itself. Revoking a revoked token is not an error.
    pub fn revoke_token(&self, which: &str) -> Result<TokenView, ServiceError> {
        let _admin = self.admin.lock();
        let mut rec = self.find_token(which)?;
        if !rec.revoked {
            rec.revoked = true;
            store::commit(
                &self.pool,
                vec![store::put(&store::token_key(&rec.hash), &rec)?],
            )?;
            self.keep_token(&rec);
        }
        Ok(token_view(&rec))
    }

    fn find_token(&self, which: &str) -> Result<TokenRec, ServiceError> {
        let reg = self.reg.lock();
        if token::well_formed(which) {
            let hash = token::sha256(which.as_bytes());
            // Named by the id it would have: the secret is never echoed.
            let not_found = || {
                ServiceError::NotFound(format!(
                    "No token has this secret (its id would be {}).",
                    token::id_of(&hash)
                ))
            };
            let rec = reg.tokens.get(&token::id_of(&hash)).ok_or_else(not_found)?;
            return match token::unhex32(&rec.hash) {
                Some(stored) if token::same_hash(&stored, &hash) => Ok(rec.clone()),
                _ => Err(not_found()),
            };
        }
        // Only an id (prefix) is repeated back: anything else may be a
        // mistyped secret. At least one hex digit after the prefix, so
        // "tok_" alone matches nothing.
        let id_like = which.len() > 4
            && which.len() <= 12
            && which.starts_with("tok_")
            && which[4..].bytes().all(|b| b.is_ascii_hexdigit());
        if !id_like {
            return Err(ServiceError::NotFound(
                "Token not found; give its id (tok_ and 8 hex digits), a unique prefix of the id, or the token itself.".into(),
            ));
        }
        let not_found = || ServiceError::not_found(&format!("Token {which}"));
        let matches: Vec<&TokenRec> = reg
            .tokens
            .range(which.to_string()..)
            .take_while(|(id, _)| id.starts_with(which))
            .map(|(_, t)| t)
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(not_found()),
            many => Err(ServiceError::BadRequest {
                code: "ambiguous_token",
                detail: format!(
                    "{which} matches {} tokens ({}); give more of the id",
                    many.len(),
                    many.iter()
                        .map(|t| t.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    /// Create the admin account and its first token, in one commit, if
    /// there is no admin account yet; the token is returned to be shown once.
    pub fn ensure_admin(&self) -> Result<Option<NewToken>, ServiceError> {
        let _admin = self.admin.lock();
        if self.reg.lock().accounts.contains_key(ADMIN_ACCOUNT) {
            return Ok(None);
        }
        let account = self.draft_account(ADMIN_ACCOUNT)?;
        let token = self.draft_token(ADMIN_ACCOUNT)?;
        store::commit(
            &self.pool,
            vec![
                store::put(&store::account_key(ADMIN_ACCOUNT), &account)?,
                token.change()?,
            ],
        )?;
        self.reg
            .lock()
            .accounts
            .insert(ADMIN_ACCOUNT.to_string(), account);
        self.keep_token(&token.rec);
        Ok(Some(token.issued()))
    }
}
