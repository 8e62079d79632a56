/* policy_principals(policy): the AWS principals (account ids, ARNs, "*") that the Allow statements of a key
   policy (the JSON text of PutKeyPolicy's or CreateKey's `policy` parameter) name. A policy's Statement is a list
   or a single object; Principal is "*" or {"AWS": one value or a list} (service principals are not a tenant's).
   A policy that is not valid JSON names nobody here: the record still lands, and the trail file keeps the text. */
CREATE OR REPLACE MACRO policy_statements(policy) AS
    CASE WHEN NOT coalesce(json_valid(policy), false) THEN []
         WHEN json_type(policy, '$.Statement') = 'ARRAY' THEN json_extract(policy, '$.Statement[*]')
         WHEN json_type(policy, '$.Statement') = 'OBJECT' THEN [json_extract(policy, '$.Statement')]
         ELSE []::VARCHAR[] END;
CREATE OR REPLACE MACRO statement_principals(s) AS
    CASE WHEN json_type(s, '$.Principal') = 'VARCHAR' THEN [json_extract_string(s, '$.Principal')]
         WHEN json_type(s, '$.Principal.AWS') = 'ARRAY' THEN json_extract_string(s, '$.Principal.AWS[*]')
         WHEN json_type(s, '$.Principal.AWS') = 'VARCHAR' THEN [json_extract_string(s, '$.Principal.AWS')]
         ELSE []::VARCHAR[] END;
CREATE OR REPLACE MACRO policy_principals(policy) AS
    list_distinct(flatten(list_transform(
        list_filter(policy_statements(policy), lambda s: json_extract_string(s, '$.Effect') = 'Allow'),
        lambda s: statement_principals(s))));
/* source_group(grp, owner): a security group a rule allows, as "<owner account>/sg-…", the form the EC2 console
   shows (a ModifySecurityGroupRules ReferencedGroupId may already carry its owner so). */
CREATE OR REPLACE MACRO source_group(grp, owner) AS
    CASE WHEN contains(grp, '/') THEN grp ELSE owner || '/' || grp END;
