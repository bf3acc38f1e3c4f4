//! Accounts and their API tokens.

use super::core::Service;
use super::error::{reason, ServiceError};
use super::model::{AccountRec, TokenRec, ADMIN_ACCOUNT};
use super::store;
use super::token;
use super::{AccountView, NewToken, TokenView};
use crate::info::{now_unix, rfc3339};

fn token_view(t: &TokenRec) -> TokenView {
    TokenView {
        id: t.id.clone(),
        account: t.account.clone(),
        created_at: rfc3339(t.created_unix),
        revoked: t.revoked,
    }
}

impl Service {
    pub fn create_account(&self, name: &str) -> Result<AccountView, ServiceError> {
        crate::validate_name("account name", name)
            .map_err(|e| ServiceError::field("name", reason(&e)))?;
        let _admin = self.admin.lock();
        if self.reg.lock().accounts.contains_key(name) {
            return Err(ServiceError::field(
                "name",
                format!("An account named {name} already exists."),
            ));
        }
        let rec = AccountRec {
            name: name.to_string(),
            created_unix: now_unix(),
        };
        store::put(&self.pool, &store::account_key(name), &rec)?;
        let view = Self::account_view(&rec);
        self.reg.lock().accounts.insert(name.to_string(), rec);
        Ok(view)
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
        // Ids are a hash prefix; draw again on the rare collision so an id
        // names one token.
        let secret = loop {
            let s = token::generate()?;
            if !self.reg.lock().tokens.contains_key(&token::id_of(&s.hash)) {
                break s;
            }
        };
        let hash = token::hex(&secret.hash);
        let rec = TokenRec {
            id: token::id_of(&secret.hash),
            account: account.to_string(),
            hash: hash.clone(),
            created_unix: now_unix(),
            revoked: false,
        };
        store::put(&self.pool, &store::token_key(&hash), &rec)?;
        let view = token_view(&rec);
        self.reg.lock().tokens.insert(rec.id.clone(), rec);
        Ok(NewToken {
            view,
            token: secret.token,
        })
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
            store::put(&self.pool, &store::token_key(&rec.hash), &rec)?;
            self.reg.lock().tokens.insert(rec.id.clone(), rec.clone());
        }
        Ok(token_view(&rec))
    }

    fn find_token(&self, which: &str) -> Result<TokenRec, ServiceError> {
        let reg = self.reg.lock();
        let not_found = || ServiceError::not_found(&format!("Token {which}"));
        if token::well_formed(which) {
            let hash = token::sha256(which.as_bytes());
            let rec = reg.tokens.get(&token::id_of(&hash)).ok_or_else(not_found)?;
            return match token::unhex32(&rec.hash) {
                Some(stored) if token::same_hash(&stored, &hash) => Ok(rec.clone()),
                _ => Err(not_found()),
            };
        }
        // At least one hex digit after the prefix, so "tok_" alone matches nothing.
        if !which.starts_with("tok_") || which.len() <= 4 {
            return Err(not_found());
        }
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

    /// Create the admin account and its first token if there is no admin
    /// account yet; the token is returned to be shown once.
    pub fn ensure_admin(&self) -> Result<Option<NewToken>, ServiceError> {
        if self.reg.lock().accounts.contains_key(ADMIN_ACCOUNT) {
            return Ok(None);
        }
        self.create_account(ADMIN_ACCOUNT)?;
        self.create_token(ADMIN_ACCOUNT).map(Some)
    }
}
