-- The catalog schema: a category tree, products with variants, inventory per SKU with an
-- audit trail, and the full-text search machinery (weighted tsvector + GIN index, and a
-- vocabulary table for typo correction).

-- Both are trusted extensions (PostgreSQL 13+): the database owner may create them.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS fuzzystrmatch;

CREATE TABLE categories (
    id         uuid PRIMARY KEY,
    parent_id  uuid REFERENCES categories (id) ON DELETE RESTRICT,
    slug       text NOT NULL,
    name       text NOT NULL,
    position   integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT categories_slug_key UNIQUE (slug),
    CONSTRAINT categories_slug_format
        CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND char_length(slug) <= 100),
    CONSTRAINT categories_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT categories_not_own_parent CHECK (parent_id IS DISTINCT FROM id)
);
CREATE INDEX categories_parent_idx ON categories (parent_id);

CREATE TABLE products (
    id              uuid PRIMARY KEY,
    slug            text NOT NULL,
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    category_id     uuid NOT NULL REFERENCES categories (id) ON DELETE RESTRICT,
    status          text NOT NULL DEFAULT 'draft',
    image_urls      text[] NOT NULL DEFAULT '{}',
    -- Roll-ups of the product's variants, maintained by the triggers below (never written
    -- by the application): the attribute values feed the search vector, the cheapest
    -- variant gives the "from" price that listings sort and filter on.
    attribute_text  text NOT NULL DEFAULT '',
    min_price_minor bigint NOT NULL DEFAULT 0,
    price_currency  char(3),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    search          tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', name), 'A')
        || setweight(to_tsvector('english', description), 'B')
        || setweight(to_tsvector('english', attribute_text), 'C')
    ) STORED,
    -- The same text unstemmed: what the typo-correction vocabulary is counted from.
    words           tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', name || ' ' || description || ' ' || attribute_text)
    ) STORED,
    CONSTRAINT products_slug_key UNIQUE (slug),
    CONSTRAINT products_slug_format
        CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND char_length(slug) <= 200),
    CONSTRAINT products_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT products_description_length CHECK (char_length(description) <= 10000),
    CONSTRAINT products_status CHECK (status IN ('draft', 'published')),
    CONSTRAINT products_min_price CHECK (min_price_minor >= 0)
);
CREATE INDEX products_search_idx ON products USING gin (search);
CREATE INDEX products_category_idx ON products (category_id);
-- The keyset orders of the public listings.
CREATE INDEX products_newest_idx ON products (created_at DESC, id DESC) WHERE status = 'published';
CREATE INDEX products_price_idx ON products (min_price_minor, id) WHERE status = 'published';

CREATE TABLE variants (
    id          uuid PRIMARY KEY,
    product_id  uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    sku         text NOT NULL,
    attributes  jsonb NOT NULL DEFAULT '{}',
    price_minor bigint NOT NULL,
    currency    char(3) NOT NULL,
    position    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT variants_sku_key UNIQUE (sku),
    CONSTRAINT variants_sku_format CHECK (sku ~ '^[A-Z0-9-]{1,64}$'),
    CONSTRAINT variants_attributes_object CHECK (jsonb_typeof(attributes) = 'object'),
    CONSTRAINT variants_price_non_negative CHECK (price_minor >= 0),
    CONSTRAINT variants_currency_format CHECK (currency ~ '^[A-Z]{3}$')
);
CREATE INDEX variants_product_idx ON variants (product_id);
CREATE INDEX variants_attributes_idx ON variants USING gin (attributes jsonb_path_ops);

CREATE TABLE inventory (
    sku        text PRIMARY KEY REFERENCES variants (sku) ON DELETE CASCADE,
    on_hand    integer NOT NULL DEFAULT 0,
    reserved   integer NOT NULL DEFAULT 0,
    available  integer GENERATED ALWAYS AS (on_hand - reserved) STORED,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inventory_on_hand_non_negative CHECK (on_hand >= 0),
    CONSTRAINT inventory_reserved_non_negative CHECK (reserved >= 0),
    -- Hence available >= 0: stock can never be promised twice.
    CONSTRAINT inventory_reserved_within_on_hand CHECK (reserved <= on_hand)
);

-- Every change of on_hand, with who and why. No foreign key: the trail outlives the SKU.
CREATE TABLE inventory_adjustments (
    id            uuid PRIMARY KEY,
    sku           text NOT NULL,
    delta         integer NOT NULL,
    reason        text NOT NULL,
    actor         text NOT NULL,
    on_hand_after integer NOT NULL,
    -- The moment of the change itself (not of its transaction's start), so that the trail
    -- sorts in the order concurrent adjustments were applied.
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT inventory_adjustments_delta CHECK (delta <> 0),
    CONSTRAINT inventory_adjustments_reason CHECK (char_length(reason) BETWEEN 1 AND 200),
    CONSTRAINT inventory_adjustments_on_hand_after CHECK (on_hand_after >= 0)
);
CREATE INDEX inventory_adjustments_sku_idx ON inventory_adjustments (sku, at DESC);

-- Which one-shot data loads (the demo catalog) have run, so that they run once.
CREATE TABLE seed_runs (
    name     text PRIMARY KEY,
    version  integer NOT NULL,
    products integer NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);

-- The words of published products (unstemmed, lower case) with their document counts:
-- the vocabulary that misspelled query words are corrected against.
CREATE TABLE search_terms (
    word text PRIMARY KEY,
    ndoc integer NOT NULL
);

-- Variant roll-ups ---------------------------------------------------------------------

CREATE FUNCTION catalog_refresh_product_rollups(product_ids uuid[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE products p
    SET attribute_text = r.attribute_text,
        min_price_minor = r.min_price_minor,
        price_currency = r.price_currency
    FROM (
        SELECT ids.id,
               coalesce(agg.attribute_text, '') AS attribute_text,
               coalesce(agg.min_price_minor, 0) AS min_price_minor,
               agg.price_currency
        FROM (SELECT DISTINCT unnest(product_ids) AS id) ids
        LEFT JOIN (
            SELECT v.product_id,
                   string_agg(DISTINCT a.value, ' ' ORDER BY a.value) AS attribute_text,
                   min(v.price_minor) AS min_price_minor,
                   (array_agg(v.currency ORDER BY v.price_minor, v.sku))[1] AS price_currency
            FROM variants v
            LEFT JOIN LATERAL jsonb_each_text(v.attributes) a ON true
            WHERE v.product_id = ANY (product_ids)
            GROUP BY v.product_id
        ) agg ON agg.product_id = ids.id
    ) r
    WHERE p.id = r.id
      AND (p.attribute_text, p.min_price_minor, p.price_currency)
          IS DISTINCT FROM (r.attribute_text, r.min_price_minor, r.price_currency)
$$;

CREATE FUNCTION catalog_variants_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM catalog_refresh_product_rollups(ARRAY(SELECT product_id FROM new_rows));
    RETURN NULL;
END
$$;

CREATE FUNCTION catalog_variants_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM catalog_refresh_product_rollups(
        ARRAY(SELECT product_id FROM new_rows UNION SELECT product_id FROM old_rows));
    RETURN NULL;
END
$$;

CREATE FUNCTION catalog_variants_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM catalog_refresh_product_rollups(ARRAY(SELECT product_id FROM old_rows));
    RETURN NULL;
END
$$;

-- Statement-level with transition tables: a bulk insert of 4,000 variants refreshes each
-- product once, in one UPDATE.
CREATE TRIGGER variants_rollup_insert AFTER INSERT ON variants
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_variants_inserted();
CREATE TRIGGER variants_rollup_update AFTER UPDATE ON variants
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_variants_updated();
CREATE TRIGGER variants_rollup_delete AFTER DELETE ON variants
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_variants_deleted();

-- Search vocabulary ----------------------------------------------------------------------

CREATE FUNCTION catalog_refresh_search_terms() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- Serialises concurrent refreshes, so that their DELETE + INSERT cannot interleave.
    PERFORM pg_advisory_xact_lock(hashtext('catalog.search_terms'));
    DELETE FROM search_terms;
    INSERT INTO search_terms (word, ndoc)
    SELECT word, ndoc
    FROM ts_stat($q$ SELECT words FROM products WHERE status = 'published' $q$)
    WHERE word ~ '^[[:alpha:]]{3,40}$';
END
$$;

-- Runs once per writing transaction, at commit (a deferred constraint trigger; the
-- transaction-local setting marks the refresh as done), whatever the number of rows.
CREATE FUNCTION catalog_products_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('catalog.search_terms_fresh', true) IS DISTINCT FROM 'on' THEN
        PERFORM set_config('catalog.search_terms_fresh', 'on', true);
        PERFORM catalog_refresh_search_terms();
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER products_search_terms
    AFTER INSERT OR DELETE OR UPDATE OF name, description, attribute_text, status ON products
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION catalog_products_changed();
