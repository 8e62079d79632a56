-- One row per CloudHSM crypto-user name a tenant's hsm_users rule names: the tenant it belongs to.
SELECT value AS user_name, arg_min(tenant_id, position) AS tenant_id
FROM tenant_rules
WHERE kind = 'hsm_user'
GROUP BY value
