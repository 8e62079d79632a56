/* Access timeline: one row per time a tenant was given a path to the keys, from its opening to its closing
   (docs/access.md). Columns: tenant_id; path_kind (vpc_peering, transit_gateway, security_group, hsm_user,
   kms_grant, key_policy, custom_key_store); path (what was opened: pcx-…, tgw-attach-…, "sg-…: <CIDR>", the
   crypto user "<cluster>/<name>", the grant id, the key ARN, cks-…); detail (what ties it to the tenant);
   opened_at / opened_by and closed_at / closed_by (NULL: opened before the logs begin, or still open); is_open;
   evidence (event ids, access_events or hsm_events, oldest first).
   A path closes with its close event (DeleteVpcPeeringConnection, RevokeSecurityGroupIngress, RetireGrant, …).
   A key policy is replaced whole: it is open from the first policy naming the tenant until a policy that does
   not. A crypto user closes when it is deleted or when someone else (the crypto officer) changes its password.
   Security groups are those of the CloudHSM clusters: CreateCluster records in the lake, and the tenants file's
   [settings] hsm_security_groups. Only successful calls count. */
WITH ok AS (
    SELECT * FROM access_events WHERE success
),
hsm_groups AS (
    SELECT security_group_id AS sg FROM ok WHERE event_name = 'CreateCluster' AND security_group_id IS NOT NULL
    UNION SELECT unnest(hsm_security_groups) FROM settings
),
-- security-group rules, one row per (group, source) change, a source being a CIDR or another security group
-- ("<owner account>/sg-…"); a rule revoked or modified by its id takes the source it had just before (from its
-- authorization or its last modification)
sg_rules AS (
    SELECT event_time, event_id, principal_arn, action, security_group_id AS sg, sources, rule_ids,
           CASE WHEN len(sources) = len(rule_ids) THEN list_zip(rule_ids, sources) END AS pairs
    FROM (SELECT *, cidrs || coalesce(source_groups, []) AS sources FROM ok)
    WHERE path_kind = 'security_group' AND security_group_id IN (SELECT sg FROM hsm_groups)
),
rule_sources AS (
    SELECT event_time, p[1] AS rule_id, p[2] AS source
    FROM (SELECT event_time, unnest(pairs) AS p FROM sg_rules WHERE action IN ('open', 'change'))
),
sg_changes AS (
    SELECT event_time, event_id, principal_arn, action, sg, unnest(sources) AS source FROM sg_rules
    UNION ALL
    -- revoked or modified by rule id: the rule's source before this call closes
    SELECT s.event_time, s.event_id, s.principal_arn, 'close', s.sg, r.source
    FROM (SELECT *, unnest(rule_ids) AS rule_id FROM sg_rules WHERE action IN ('close', 'change')) s
    ASOF JOIN rule_sources r ON s.rule_id = r.rule_id AND s.event_time > r.event_time
    WHERE s.action = 'change' OR len(s.sources) = 0
),
changes AS (
    -- a CIDR overlapping the tenant's VPC, or a security group of the tenant's account
    SELECT t.tenant_id, 'security_group' AS path_kind, c.sg || ': ' || c.source AS path,
           CASE WHEN c.owner IS NULL THEN 'CIDR ' || c.source || ' overlaps the tenant''s VPC'
                ELSE 'security group ' || split_part(c.source, '/', 2) || ' of the tenant''s account ' || c.owner
           END AS detail,
           c.event_time, c.event_id, c.principal_arn AS who, CASE c.action WHEN 'close' THEN 'close' ELSE 'open' END
               AS action
    FROM (SELECT *, CASE WHEN contains(source, '/sg-') THEN split_part(source, '/', 1) END AS owner
          FROM sg_changes) c
    JOIN tenants t ON CASE WHEN c.owner IS NULL THEN len(list_filter(t.vpc_cidrs, lambda v: cidr_overlap(v, c.source))) > 0
                           ELSE list_contains(t.accounts, c.owner) END
    UNION ALL
    -- peering and attachments: the path's id is the tenant's, or any of its records names the tenant's account,
    -- VPC range
    SELECT n.tenant_id, n.path_kind, n.path_id, n.how, e.event_time, e.event_id, e.principal_arn, e.action
    FROM (SELECT DISTINCT path_kind, path_id, t.tenant_id,
                 CASE WHEN list_contains(t.peering_ids, path_id) THEN 'declared in peering_ids'
                      WHEN list_contains(t.accounts, peer_account_id) THEN 'peer account ' || peer_account_id
                      ELSE 'peer VPC range' END AS how
          FROM ok JOIN tenants t ON list_contains(t.peering_ids, path_id) OR list_contains(t.accounts, peer_account_id)
                                 OR len(list_filter(t.vpc_cidrs, lambda v: list_bool_or(list_transform(
                                        coalesce(cidrs, []), lambda c: cidr_overlap(v, c))))) > 0
          WHERE path_kind IN ('vpc_peering', 'transit_gateway') AND path_id IS NOT NULL
          QUALIFY row_number() OVER (PARTITION BY path_kind, path_id, t.tenant_id ORDER BY how) = 1) n
    JOIN ok e USING (path_kind, path_id)
    UNION ALL
    -- grants: to a principal of the tenant; closed by RetireGrant / RevokeGrant of the same grant id
    SELECT g.tenant_id, 'kms_grant', e.path_id, 'grant on ' || g.key_arn || ' to ' || g.grantee_principal,
           e.event_time, e.event_id, e.principal_arn, e.action
    FROM (SELECT DISTINCT t.tenant_id, path_id, key_arn, grantee_principal
          FROM ok JOIN tenants t ON names_tenant(grantee_principal, t.accounts, t.principals)
          WHERE event_name = 'CreateGrant') g
    JOIN ok e ON e.path_kind = 'kms_grant' AND e.path_id = g.path_id
    UNION ALL
    SELECT tenant_id, 'key_policy', path_id, 'key policy names ' || names, event_time, event_id, principal_arn,
           CASE WHEN names <> '' THEN 'open' ELSE 'close' END
    FROM (SELECT *, bool_or(names <> '') OVER (PARTITION BY tenant_id, path_id ORDER BY event_time
                                               ROWS UNBOUNDED PRECEDING) AS seen
          FROM (SELECT t.tenant_id, e.path_id, e.event_time, e.event_id, e.principal_arn,
                       array_to_string(list_filter(e.policy_principals,
                                                   lambda p: names_tenant(p, t.accounts, t.principals)), ', ') AS names
                FROM ok e CROSS JOIN tenants t WHERE e.path_kind = 'key_policy'))
    -- only the policies from the first one naming the tenant on
    WHERE seen
    UNION ALL
    SELECT t.tenant_id, 'custom_key_store', e.path_id, 'custom key store on ' || coalesce(e.cluster_id, '?'),
           e.event_time, e.event_id, e.principal_arn, e.action
    FROM ok e JOIN tenants t ON list_contains(t.custom_key_stores, e.path_id)
    WHERE e.path_kind = 'custom_key_store' AND e.action IN ('open', 'close')
    UNION ALL
    SELECT tenant_id, 'hsm_user', cluster_id || '/' || user_name, 'crypto user ' || user_name,
           event_time, event_id, session_user_name, CASE opcode WHEN 'CN_CREATE_USER' THEN 'open' ELSE 'close' END
    FROM (SELECT h.*, t.tenant_id FROM hsm_events h
          JOIN (SELECT tenant_id, unnest(hsm_users) AS u FROM tenants) t
            ON h.user_name = regexp_extract(t.u, '[^/]*$')
           AND (NOT contains(t.u, '/') OR h.cluster_id = split_part(t.u, '/', 1))
          WHERE h.success AND (h.opcode IN ('CN_CREATE_USER', 'CN_DELETE_USER')
                               OR (h.opcode = 'CN_CHANGE_PSWD' AND h.session_user_name IS DISTINCT FROM h.user_name))
          -- one command is logged on every HSM of the cluster: its first copy stands for it
          QUALIFY row_number() OVER (PARTITION BY h.cluster_id, h.opcode, h.user_name, utc_hour(h.event_time),
                                     date_part('minute', h.event_time) ORDER BY h.event_time, h.event_id) = 1)
),
episodes AS (
    SELECT *, sum(starts) OVER (PARTITION BY tenant_id, path_kind, path ORDER BY event_time, event_id
                                ROWS UNBOUNDED PRECEDING) AS episode
    FROM (SELECT *, CASE WHEN action = 'open' AND coalesce(lag(action) OVER w, 'close') = 'close' THEN 1 ELSE 0 END
                        AS starts
          FROM changes WINDOW w AS (PARTITION BY tenant_id, path_kind, path ORDER BY event_time, event_id))
)
SELECT tenant_id, path_kind, path, coalesce(arg_min(detail, event_time) FILTER (action = 'open'), min(detail)) AS detail,
       min(event_time) FILTER (action = 'open') AS opened_at,
       arg_min(who, event_time) FILTER (action = 'open') AS opened_by,
       CASE WHEN arg_max(action, (event_time, event_id)) = 'close' THEN max(event_time) END AS closed_at,
       CASE WHEN arg_max(action, (event_time, event_id)) = 'close' THEN arg_max(who, event_time) END AS closed_by,
       arg_max(action, (event_time, event_id)) = 'open' AS is_open,
       list(event_id ORDER BY event_time, event_id) AS evidence
FROM episodes
GROUP BY tenant_id, path_kind, path, episode
