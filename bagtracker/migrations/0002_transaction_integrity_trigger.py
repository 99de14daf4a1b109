"""Rules that span tables, enforced by the database like the single-table CHECK constraints.

- a transaction's token is on its wallet's chain;
- its amount has no more decimal places than its token's ``decimals``;
- a token's ``decimals`` cannot shrink below the places of an amount already stored.

Violations raise SQLSTATE 23514 (check_violation), which Django maps to IntegrityError.
"""

from django.db import migrations

FORWARD = r"""
CREATE FUNCTION bagtracker_transaction_integrity() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    token_chain bigint;
    token_decimals smallint;
    wallet_chain bigint;
BEGIN
    SELECT chain_id, decimals INTO token_chain, token_decimals FROM bagtracker_token WHERE id = NEW.token_id;
    SELECT chain_id INTO wallet_chain FROM bagtracker_wallet WHERE id = NEW.wallet_id;
    IF token_chain IS DISTINCT FROM wallet_chain THEN
        RAISE EXCEPTION 'transaction_token_on_wallet_chain: token % is not on the chain of wallet %',
            NEW.token_id, NEW.wallet_id USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.amount <> trunc(NEW.amount, token_decimals) THEN
        RAISE EXCEPTION 'transaction_amount_within_token_decimals: amount % has more than % decimal places',
            NEW.amount, token_decimals USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER bagtracker_transaction_integrity
    BEFORE INSERT OR UPDATE OF wallet_id, token_id, amount ON bagtracker_transaction
    FOR EACH ROW EXECUTE FUNCTION bagtracker_transaction_integrity();

CREATE FUNCTION bagtracker_token_integrity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.decimals < OLD.decimals AND EXISTS (
        SELECT 1 FROM bagtracker_transaction
        WHERE token_id = NEW.id AND amount <> trunc(amount, NEW.decimals)
    ) THEN
        RAISE EXCEPTION 'token_decimals_cover_amounts: token % has amounts with more than % decimal places',
            NEW.id, NEW.decimals USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.chain_id <> OLD.chain_id AND EXISTS (SELECT 1 FROM bagtracker_transaction WHERE token_id = NEW.id) THEN
        RAISE EXCEPTION 'token_chain_fixed: token % has transactions; its chain cannot change', NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER bagtracker_token_integrity
    BEFORE UPDATE OF decimals, chain_id ON bagtracker_token
    FOR EACH ROW EXECUTE FUNCTION bagtracker_token_integrity();

CREATE FUNCTION bagtracker_wallet_integrity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.chain_id <> OLD.chain_id AND EXISTS (SELECT 1 FROM bagtracker_transaction WHERE wallet_id = NEW.id) THEN
        RAISE EXCEPTION 'wallet_chain_fixed: wallet % has transactions; its chain cannot change', NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER bagtracker_wallet_integrity
    BEFORE UPDATE OF chain_id ON bagtracker_wallet
    FOR EACH ROW EXECUTE FUNCTION bagtracker_wallet_integrity();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS bagtracker_wallet_integrity ON bagtracker_wallet;
DROP FUNCTION IF EXISTS bagtracker_wallet_integrity();
DROP TRIGGER IF EXISTS bagtracker_token_integrity ON bagtracker_token;
DROP FUNCTION IF EXISTS bagtracker_token_integrity();
DROP TRIGGER IF EXISTS bagtracker_transaction_integrity ON bagtracker_transaction;
DROP FUNCTION IF EXISTS bagtracker_transaction_integrity();
"""


class Migration(migrations.Migration):
    dependencies = [("bagtracker", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
