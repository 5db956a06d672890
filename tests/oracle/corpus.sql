-- The oracle's hand-written corpus: user-shaped statements, one or more per statement shape.
--
-- Each case starts with a header line `-- @shape [flags]`; its SQL runs until the next header
-- (other `--` lines are notes). Cases of one shape are numbered in order: shape-1, shape-2, ...
-- Flags:
--   ordered        the top-level ORDER BY ends in a unique key: rows are compared in order
--                  (otherwise as multisets)
--   tables=a,b     the statement changes these tables: both engines start each run from fresh
--                  copies (corpus.FRESH) and compare the tables after it
--   copy=FORMAT    the statement writes '{out}' in FORMAT; the file is read back and compared
--   params={...}   JSON values for the statement's :name parameters
-- A text of several statements compares the last one's rows (and the tables).
--
-- Tables (world.py): px (digits ids 0-299, plus ids 300-301 with NULL pixels), nums (v FLOAT[4]
-- with NULLs, g text, k int with NULLs, ts), ev (item BIGINT with NULLs, ts, qty), bags (vs:
-- lists of FLOAT[4], items: lists of BIGINT), docs (short texts, one NULL), empty_px, and the
-- polars DataFrame `frame` (id, w, tag).
-- Models: digits (classify FLOAT[64]), reg (regress FLOAT[64]), cls4 (classify FLOAT[4], text
-- labels), vec4 (embed FLOAT[4] -> FLOAT[3]), emb (classify BIGINT ids), minilm (text).

-- == SELECT-list lateral aliases =================================================================

-- @lateral-alias ordered
SELECT id, digits(pixels).label AS p, p + 1 AS q FROM px WHERE id < 20 OR id >= 300 ORDER BY id;

-- @lateral-alias ordered
SELECT id, reg(pixels) AS r, r * 2 AS r2, r2 - r AS back FROM px WHERE id < 15 ORDER BY id;

-- @lateral-alias ordered
SELECT id, cls4(v) AS c, (c).label AS l, c['score'] > 0.5 AS sure FROM nums ORDER BY id;

-- @lateral-alias ordered
SELECT id, vec4(v) AS e, e[1] + e[2] AS s12, e[3] * 10 AS third FROM nums WHERE id < 20 ORDER BY id;

-- @lateral-alias ordered
SELECT digits(pixels).label AS l, count(*) AS n, n * 2 AS twice FROM px GROUP BY l ORDER BY l;

-- @lateral-alias ordered
SELECT id, emb(item).label AS l, l * 100 + id AS code FROM ev WHERE id < 30 ORDER BY id;

-- @lateral-alias ordered
SELECT id, digits(pixels) AS d, (d).label = label AS right
FROM px WHERE id BETWEEN 50 AND 70 ORDER BY id;

-- == ORDER BY / QUALIFY / HAVING over model outputs ==============================================

-- @order-by-output ordered
SELECT id, reg(pixels) AS sc FROM px WHERE id < 40 ORDER BY -sc LIMIT 10;

-- @order-by-output ordered
SELECT id, cls4(v).score AS sc FROM nums WHERE v IS NOT NULL ORDER BY -sc, id;

-- @order-by-output ordered
SELECT id FROM px WHERE id < 50 ORDER BY digits(pixels).label DESC, id;

-- @order-by-output ordered
SELECT id, digits(pixels).label AS l FROM px WHERE id < 30 OR id >= 300 ORDER BY l NULLS FIRST, id DESC;

-- @order-by-output ordered
SELECT id, emb(item) AS o FROM ev ORDER BY (o).label, (o).score DESC, id;

-- @order-by-output ordered
SELECT id, reg(pixels) AS r FROM px WHERE id < 100 ORDER BY abs(r - 2), id LIMIT 7;

-- @order-by-output ordered
SELECT id FROM nums ORDER BY cls4(v).label, id LIMIT 12 OFFSET 3;

-- @qualify ordered
SELECT id, digits(pixels).label AS l FROM px WHERE id < 60
QUALIFY row_number() OVER (PARTITION BY l ORDER BY id) <= 2
ORDER BY id;

-- @qualify ordered
SELECT id, reg(pixels) AS r FROM px WHERE id < 80
QUALIFY r = max(r) OVER (PARTITION BY label)
ORDER BY id;

-- @qualify ordered
SELECT id, g, cls4(v).label AS l FROM nums
QUALIFY rank() OVER (PARTITION BY g ORDER BY cls4(v).score DESC) = 1
ORDER BY id;

-- @qualify
SELECT id FROM ev QUALIFY emb(item).label = lag(emb(item).label) OVER (ORDER BY id);

-- @having ordered
SELECT label, avg(reg(pixels)) AS a FROM px GROUP BY label
HAVING count(*) > 20 AND avg(digits(pixels).score) > 0.9
ORDER BY label;

-- @having ordered
SELECT digits(pixels).label AS l, count(*) AS n FROM px GROUP BY l HAVING max(reg(pixels)) > 0 ORDER BY l;

-- @having ordered
SELECT g, list_sort(list(cls4(v).label)) AS ls FROM nums GROUP BY g
HAVING sum(cls4(v).score) > 1
ORDER BY g;

-- @having ordered
SELECT emb(item).label AS l, sum(qty) AS q FROM ev GROUP BY ALL HAVING count(DISTINCT item) > 2 ORDER BY l;

-- @having ordered
SELECT k, count(*) AS n FROM nums GROUP BY k HAVING bool_or(cls4(v).label = 'hi') ORDER BY k;

-- == PIVOT / UNPIVOT =============================================================================

-- @pivot ordered
PIVOT (SELECT digits(pixels).label AS l, id % 2 AS par FROM px WHERE id < 100)
ON par USING count(*) GROUP BY l
ORDER BY l;

-- @pivot ordered
PIVOT (SELECT g, cls4(v).label AS c FROM nums) ON c USING count(*) GROUP BY g ORDER BY g;

-- @pivot ordered
SELECT * FROM (SELECT label, digits(pixels).label AS pred FROM px WHERE id < 120)
PIVOT (count(*) FOR pred IN (0, 1, 2, 3))
ORDER BY label;

-- @pivot ordered
PIVOT nums ON cls4(v).label IN ('lo', 'mid', 'hi') USING avg(id) GROUP BY g ORDER BY g;

-- @pivot ordered
PIVOT (SELECT id % 3 AS b, emb(item).label AS l, qty FROM ev)
ON l IN (0, 1, 2) USING sum(qty) GROUP BY b
ORDER BY b;

-- @pivot
PIVOT (SELECT digits(pixels).label AS l, label FROM px WHERE id < 90)
ON l IN (1, 7) USING count(*) GROUP BY label;

-- @unpivot ordered
UNPIVOT (SELECT id, digits(pixels).score AS s, reg(pixels) AS r FROM px WHERE id < 10)
ON s, r INTO NAME k VALUE val
ORDER BY id, k;

-- @unpivot ordered
UNPIVOT (SELECT id, vec4(v)[1] AS a, vec4(v)[2] AS b, vec4(v)[3] AS c FROM nums WHERE id < 12)
ON COLUMNS(* EXCLUDE (id)) INTO NAME dim VALUE x
ORDER BY id, dim;

-- @unpivot ordered
SELECT k, count(*) AS n, sum(val) AS total
FROM (UNPIVOT (SELECT id, cls4(v).score AS s1, 1 - cls4(v).score AS s2 FROM nums)
      ON s1, s2 INTO NAME k VALUE val)
GROUP BY k ORDER BY k;

-- @unpivot
SELECT * FROM (SELECT id, emb(item).label AS l, qty FROM ev WHERE id < 8) UNPIVOT (x FOR col IN (l, qty));

-- == INSERT ... SELECT, UPDATE ... SET c = m(x), DELETE ... WHERE m(x), RETURNING ================

-- @insert tables=t_out
INSERT INTO t_out
SELECT id, digits(pixels).label, digits(pixels).score FROM px WHERE id < 30 OR id >= 300;

-- @insert tables=t_out
INSERT INTO t_out (id, s) SELECT id, reg(pixels) FROM px WHERE id BETWEEN 40 AND 60 RETURNING id, s;

-- @insert tables=t_out
INSERT INTO t_out BY NAME SELECT emb(item).label AS l, id FROM ev WHERE id % 4 = 0 RETURNING *;

-- @insert tables=t_out
INSERT INTO t_out
SELECT id + 2000, (cls4(v).label = 'hi')::INTEGER, cls4(v).score FROM nums WHERE id < 10;

-- @insert tables=t_out
INSERT INTO t_out
SELECT id, digits(pixels).label, NULL FROM px WHERE digits(pixels).label = 7 AND id < 200
RETURNING id, l;

-- @insert tables=t_out
INSERT INTO t_out
SELECT * FROM (SELECT id, digits(pixels).label AS l, digits(pixels).score AS s FROM px WHERE id < 50)
WHERE l > 5;

-- @insert tables=t_out
INSERT INTO t_out SELECT id, 1, 0.5 FROM px WHERE id < 3;
INSERT INTO t_out SELECT id + 10, digits(pixels).label, reg(pixels) FROM px WHERE id < 5 RETURNING id, s;

-- @update tables=t_px
UPDATE t_px SET label = digits(pixels).label;

-- @update tables=t_px
UPDATE t_px SET label = digits(pixels).label WHERE id % 2 = 0 RETURNING id, label;

-- @update tables=t_nums
UPDATE t_nums SET g = cls4(v).label WHERE v IS NOT NULL RETURNING id, g;

-- @update tables=t_px
UPDATE t_px SET label = -1 WHERE digits(pixels).label <> label RETURNING id;

-- @update tables=t_ev
UPDATE t_ev SET qty = emb(item).label + qty WHERE emb(item).score > 0.4;

-- @update tables=t_px
UPDATE t_px SET label = p.l
FROM (SELECT id, digits(pixels).label AS l FROM px) p
WHERE t_px.id = p.id AND p.l > 4;

-- @update tables=t_nums
UPDATE t_nums SET k = (SELECT count(*) FROM ev WHERE emb(ev.item).label = t_nums.k) RETURNING id, k;

-- @update tables=t_nums
UPDATE t_nums SET v = NULL WHERE cls4(v).label = 'lo' RETURNING id, cls4(v) AS c;

-- @delete tables=t_px
DELETE FROM t_px WHERE digits(pixels).label = 3;

-- @delete tables=t_px
DELETE FROM t_px WHERE digits(pixels).score < 0.99 RETURNING id;

-- @delete tables=t_nums
DELETE FROM t_nums WHERE cls4(v).label IN ('lo', 'mid') RETURNING id, g;

-- @delete tables=t_ev
DELETE FROM t_ev WHERE id IN (SELECT id FROM ev WHERE emb(item).label = 2);

-- @delete tables=t_px
DELETE FROM t_px WHERE reg(pixels) > 2.5 OR pixels IS NULL RETURNING *;

-- @delete tables=t_ev
DELETE FROM t_ev WHERE emb(item).label IS NULL;

-- a model call in RETURNING itself

-- @returning tables=t_px
DELETE FROM t_px WHERE id < 5 RETURNING id, digits(pixels).label AS l;

-- @returning tables=t_nums
UPDATE t_nums SET k = 0 WHERE id < 8 RETURNING id, cls4(v).label AS l;

-- @returning tables=t_px
DELETE FROM t_px WHERE id % 3 = 0 RETURNING id, reg(pixels) AS r, digits(pixels) AS d;

-- == COPY (query) TO a file, read back ===========================================================

-- @copy copy=parquet
COPY (SELECT id, digits(pixels).label AS l, digits(pixels).score AS s FROM px WHERE id < 25)
TO '{out}' (FORMAT parquet);

-- @copy copy=parquet
COPY (SELECT id, vec4(v) AS e FROM nums ORDER BY id) TO '{out}' (FORMAT parquet);

-- @copy copy=csv
COPY (SELECT g, cls4(v).label AS l, count(*) AS n FROM nums GROUP BY ALL ORDER BY ALL)
TO '{out}' (FORMAT csv, HEADER);

-- @copy copy=json
COPY (SELECT id, emb(item) AS o FROM ev WHERE id < 20) TO '{out}' (FORMAT json);

-- @copy copy=csv
COPY (SELECT id FROM px WHERE digits(pixels).label = 5 AND id < 200) TO '{out}' (FORMAT csv);

-- == ASOF and LATERAL joins ======================================================================

-- @asof ordered
SELECT e.id, n.id AS nid, cls4(n.v).label AS l
FROM ev e ASOF JOIN nums n ON e.ts >= n.ts
ORDER BY e.id;

-- @asof ordered
SELECT e.id, emb(e.item).label AS el, n.k
FROM ev e ASOF LEFT JOIN nums n ON e.qty = n.k AND e.ts >= n.ts
WHERE e.id < 40 ORDER BY e.id;

-- @asof ordered
SELECT n.id, e.id AS eid
FROM nums n ASOF JOIN (SELECT id, ts FROM ev WHERE emb(item).label = 1) e ON n.ts <= e.ts
ORDER BY n.id;

-- @asof ordered
SELECT e.id, n.l
FROM ev e ASOF JOIN (SELECT ts, k, cls4(v).label AS l FROM nums) n ON e.qty = n.k AND e.ts >= n.ts
ORDER BY e.id;

-- @lateral ordered
SELECT a.id, b.l FROM px a, LATERAL (SELECT digits(a.pixels).label AS l) b WHERE a.id < 20 ORDER BY a.id;

-- @lateral
SELECT n.id, x.e FROM nums n, LATERAL (SELECT unnest(vec4(n.v)) AS e) x WHERE n.id < 6;

-- @lateral
SELECT b.id, t.l FROM bags b, LATERAL (SELECT cls4(u).label AS l FROM unnest(b.vs) AS t2(u)) t;

-- @lateral ordered
SELECT n.id, top.id AS pid
FROM nums n CROSS JOIN LATERAL (
    SELECT p.id FROM px p WHERE p.id > n.id * 5 AND digits(p.pixels).label = n.k ORDER BY p.id LIMIT 1
) top
ORDER BY n.id;

-- @lateral ordered
SELECT e.id, l.s FROM ev e JOIN LATERAL (SELECT emb(e.item).score AS s) l ON true
WHERE e.id < 25 ORDER BY e.id;

-- == recursive CTEs ==============================================================================

-- @recursive-cte ordered
WITH RECURSIVE chain(id, l, depth) AS (
    SELECT id, digits(pixels).label, 0 FROM px WHERE id < 5
    UNION ALL
    SELECT p.id, digits(p.pixels).label, c.depth + 1 FROM chain c JOIN px p ON p.id = c.id + 10
    WHERE c.depth < 3
)
SELECT * FROM chain ORDER BY depth, id;

-- @recursive-cte ordered
WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < 9)
SELECT r.i, digits(p.pixels).label AS l FROM r JOIN px p ON p.id = r.i * 7 ORDER BY r.i;

-- @recursive-cte ordered
WITH RECURSIVE walk(id, hops) AS (
    SELECT 0, 0
    UNION ALL
    SELECT (w.id * 3 + emb(e.item).label + 1) % 60, w.hops + 1 FROM walk w JOIN ev e ON e.id = w.id
    WHERE w.hops < 6
)
SELECT * FROM walk ORDER BY hops;

-- @recursive-cte ordered
WITH RECURSIVE t(n, s) AS (
    SELECT 1, reg((SELECT pixels FROM px WHERE id = 1))
    UNION ALL
    SELECT n + 1, s + reg((SELECT pixels FROM px WHERE id = n + 1)) FROM t WHERE n < 5
)
SELECT n, s FROM t ORDER BY n;

-- == UNION BY NAME, COLUMNS(*) ===================================================================

-- @union-by-name
SELECT id, digits(pixels).label AS l FROM px WHERE id < 10
UNION ALL BY NAME
SELECT reg(pixels) AS r, id FROM px WHERE id BETWEEN 5 AND 15;

-- @union-by-name
SELECT cls4(v).label AS lab, id FROM nums WHERE id < 10
UNION BY NAME
SELECT id, g AS lab FROM nums WHERE id >= 35;

-- @union-by-name
SELECT id, emb(item).label AS l FROM ev WHERE id < 5
UNION BY NAME
SELECT id, label AS l FROM px WHERE id < 5;

-- @columns
SELECT COLUMNS(*) FROM (SELECT id, digits(pixels).label AS l, reg(pixels) AS r FROM px WHERE id < 10);

-- @columns
SELECT max(COLUMNS(* EXCLUDE (pixels)))
FROM (SELECT id, pixels, digits(pixels).score AS s, reg(pixels) AS r FROM px);

-- @columns
SELECT id, COLUMNS('^s_')
FROM (SELECT id, digits(pixels).score AS s_d, cls4([1, 2, 3, 4]::FLOAT[4]).score AS s_c, label
      FROM px WHERE id < 8);

-- @columns
SELECT digits(COLUMNS('pixels')).label FROM px WHERE id < 10;

-- @columns
SELECT COLUMNS(lambda c: c LIKE '%score%')
FROM (SELECT id, digits(pixels).score AS d_score, reg(pixels) AS r FROM px WHERE id < 5);

-- @columns ordered
SELECT * EXCLUDE (pixels) REPLACE (digits(pixels).label AS label) FROM px WHERE id < 12 ORDER BY id;

-- == model calls inside lambdas and macros =======================================================

-- @lambda ordered
SELECT id, list_transform(vs, lambda x: cls4(x).label) AS ls FROM bags ORDER BY id;

-- @lambda ordered
SELECT id, list_filter(vs, lambda x: cls4(x).score > 0.5) AS keep FROM bags ORDER BY id;

-- @lambda ordered
SELECT id, [emb(x).label FOR x IN items] AS ls FROM bags ORDER BY id;

-- @lambda ordered
SELECT id, list_transform(items, lambda x: emb(x).score * 2) AS s FROM bags ORDER BY id;

-- @lambda ordered
SELECT id, list_reduce(list_transform(vs, lambda x: vec4(x)[1]), lambda a, b: a + b) AS r
FROM bags WHERE len(vs) > 0 ORDER BY id;

-- @lambda ordered
SELECT b.id, list_transform([p.pixels], lambda x: digits(x).label) AS l
FROM bags b JOIN px p ON p.id = b.id ORDER BY b.id;

-- @macro ordered
CREATE OR REPLACE MACRO m_label(a) AS digits(a).label;
SELECT id, m_label(pixels) AS l FROM px WHERE id < 20 ORDER BY id;

-- @macro ordered
CREATE OR REPLACE MACRO m_conf(a, t) AS cls4(a).score > t;
SELECT id FROM nums WHERE m_conf(v, 0.6) ORDER BY id;

-- @macro ordered
CREATE OR REPLACE MACRO m_tab(n) AS TABLE SELECT id, digits(pixels).label AS l FROM px WHERE id < n;
SELECT * FROM m_tab(15) ORDER BY id;

-- @macro ordered
CREATE OR REPLACE MACRO m_both(a) AS digits(a).label + reg(a);
SELECT id, m_both(pixels) AS b FROM px WHERE id < 10 ORDER BY id;

-- @macro ordered
CREATE OR REPLACE MACRO m_item(i) AS emb(i).label;
SELECT m_item(item) AS l, count(*) AS n FROM ev GROUP BY l ORDER BY l;

-- == prepared statements, parameters =============================================================

-- @prepare ordered
PREPARE p_lt AS SELECT id, digits(pixels).label AS l FROM px WHERE id < $1 ORDER BY id;
EXECUTE p_lt(5);

-- @prepare ordered
PREPARE p_q AS SELECT id FROM nums WHERE cls4(v).label = ? ORDER BY id;
EXECUTE p_q('hi');

-- @prepare ordered
PREPARE p_named AS SELECT id, reg(pixels) AS r FROM px WHERE id BETWEEN $lo AND $hi ORDER BY id;
EXECUTE p_named(lo := 3, hi := 9);

-- @prepare tables=t_out
PREPARE p_ins AS
INSERT INTO t_out SELECT id, digits(pixels).label, digits(pixels).score FROM px WHERE id < $1;
EXECUTE p_ins(7);

-- @params ordered params={"n": 200, "l": 4}
SELECT id FROM px WHERE id < :n AND digits(pixels).label = :l ORDER BY id;

-- @params ordered params={"lab": "mid"}
SELECT id, cls4(v).label AS l FROM nums WHERE cls4(v).label = :lab ORDER BY id;

-- @params params={"v": [0.5, -0.25, 0.125, 0.75]}
SELECT cls4(:v::FLOAT[4]) AS c, vec4(:v::FLOAT[4]) AS e;

-- == views =======================================================================================

-- @view ordered
CREATE OR REPLACE VIEW v_pred AS SELECT id, digits(pixels).label AS l, label FROM px;
SELECT * FROM v_pred WHERE id < 20 ORDER BY id;

-- @view
CREATE OR REPLACE VIEW v_agree AS SELECT id FROM px WHERE digits(pixels).label = label;
SELECT count(*) AS n FROM v_agree;

-- @view ordered
CREATE OR REPLACE VIEW v_cls AS SELECT id, g, cls4(v) AS c FROM nums;
SELECT g, count(*) AS n, max(c.score) AS m FROM v_cls GROUP BY g ORDER BY g;

-- @view ordered
CREATE OR REPLACE VIEW v_base AS SELECT id, pixels FROM px WHERE id < 30;
SELECT id, digits(pixels).label AS l FROM v_base ORDER BY id;

-- @view ordered
CREATE OR REPLACE VIEW v_ev AS SELECT id, emb(item).label AS l FROM ev;
SELECT v.l, count(*) AS n FROM v_ev v JOIN nums n ON v.id = n.id GROUP BY v.l ORDER BY v.l;

-- == DataFrames in FROM (the polars DataFrame `frame`) ===========================================

-- @dataframe ordered
SELECT f.id, f.w, digits(p.pixels).label AS l FROM frame f JOIN px p USING (id) ORDER BY f.id;

-- @dataframe ordered
SELECT tag, count(*) AS n FROM frame
WHERE reg((SELECT pixels FROM px WHERE px.id = frame.id)) > 2
GROUP BY tag ORDER BY tag;

-- @dataframe ordered
SELECT f.id, cls4([f.w, f.w, 0, 1]::FLOAT[4]).label AS l FROM frame f ORDER BY f.id;

-- @dataframe ordered
SELECT n.id, f.tag, cls4(n.v).label AS l FROM nums n JOIN frame f ON n.id = f.id ORDER BY n.id;

-- == a text model (minilm): dl_centric and udf_centric only ======================================

-- @text ordered
SELECT id, minilm(body)[1] AS x FROM docs ORDER BY id;

-- @text ordered
SELECT id FROM docs
ORDER BY array_cosine_similarity(minilm(body), minilm('sorting lists')) DESC NULLS LAST, id
LIMIT 3;

-- @text ordered
WITH e AS MATERIALIZED (SELECT id, minilm(body) AS v FROM docs)
SELECT a.id, b.id AS bid FROM e a, e b
WHERE a.id < b.id AND array_cosine_similarity(a.v, b.v) > 0.5
ORDER BY a.id, b.id;

-- @text
SELECT id, minilm(body) AS e FROM docs WHERE id < 4 OR body IS NULL;

-- @text ordered
SELECT id, minilm(body) AS e, e[1] + e[2] AS s FROM docs WHERE id <= 5 ORDER BY id;

-- == columns the user did not name: DuckDB names them ============================================

-- (Unaliased columns that call a model are named by the call as written, `digits(pixels).label`,
-- not by DuckDB's rendering `(digits(pixels))."label"`: a deliberate difference, tested in
-- tests/plan/test_builder.py, so every case here names its columns.)

-- == edges: empty inputs, NULL and constant inputs ===============================================

-- @edge
SELECT id, digits(pixels).label AS l FROM empty_px;

-- @edge
SELECT count(digits(pixels).label) AS n, avg(reg(pixels)) AS a FROM empty_px;

-- @edge
SELECT digits(NULL::FLOAT[64]) AS d, reg(NULL) AS r;

-- @edge
SELECT cls4([0.1, 0.2, 0.3, 0.4]::FLOAT[4]) AS c, vec4([0.1, 0.2, 0.3, 0.4]::FLOAT[4]) AS e;

-- @edge
SELECT id, emb(item) AS o FROM ev WHERE item IS NULL;

-- @edge
SELECT count(*) AS n FROM px WHERE digits(pixels).label IS NULL;
