//! The typed structs made into the contract's messages: what [`crate::convert::event::from_v4`]
//! does for a `serde_json::Value`, for an event read in its published shape.

use super::*;

impl V4Event {
    /// The typed `Event`; nothing is left over, so `unmapped` is empty.
    pub fn into_event(self) -> Event {
        let mut e = Event {
            event_id: self.event_id.unwrap_or_default(),
            timestamp: self.timestamp,
            source: self.source,
            incremental_identification_status: self.incremental_identification_status,
            linked_id: self.linked_id,
            environment_id: self.environment_id,
            suspect: self.suspect,
            sdk: self.sdk.map(TSdk::convert),
            replayed: self.replayed,
            identification: self.identification.map(TIdentification::convert),
            supplementary_id_high_recall: self
                .supplementary_id_high_recall
                .map(TIdentification::convert),
            tags: self.tags.map(to_struct),
            url: self.url,
            bundle_id: self.bundle_id,
            package_name: self.package_name,
            ip_address: self.ip_address,
            user_agent: self.user_agent,
            device: self.device,
            os: self.os,
            os_version: self.os_version,
            client_referrer: self.client_referrer,
            browser_details: self.browser_details.map(|b| BrowserDetails {
                browser_name: b.browser_name,
                browser_major_version: b.browser_major_version,
                browser_full_version: b.browser_full_version,
                os: b.os,
                os_version: b.os_version,
                device: b.device,
            }),
            proximity: self.proximity.map(|p| Proximity {
                id: p.id,
                precision_radius: p.precision_radius,
                confidence: p.confidence,
            }),
            active_call: self.active_call,
            bot_type: self.bot_type,
            bot_info: self.bot_info.map(|b| BotInfo {
                category: b.category,
                provider: b.provider,
                provider_url: b.provider_url,
                name: b.name,
                identity: b.identity,
                confidence: b.confidence,
            }),
            cloned_app: self.cloned_app,
            developer_tools: self.developer_tools,
            emulator: self.emulator,
            factory_reset_time: self.factory_reset_timestamp,
            frida: self.frida,
            ip_blocklist: self.ip_blocklist.map(|b| IpBlocklist {
                email_spam: b.email_spam,
                attack_source: b.attack_source,
                tor_node: b.tor_node,
            }),
            ip_info: self.ip_info.map(|i| IpInfo {
                v4: i.v4.map(TIpDetails::convert),
                v6: i.v6.map(TIpDetails::convert),
            }),
            proxy: self.proxy,
            proxy_confidence: self.proxy_confidence,
            proxy_details: self.proxy_details.map(|p| ProxyDetails {
                proxy_type: p.proxy_type,
                last_seen_at: p.last_seen_at,
                provider: p.provider,
            }),
            proxy_ml_score: self.proxy_ml_score,
            incognito: self.incognito,
            jailbroken: self.jailbroken,
            location_spoofing: self.location_spoofing,
            mitm_attack: self.mitm_attack,
            privacy_settings: self.privacy_settings,
            root_apps: self.root_apps,
            rule_action: self.rule_action.map(to_struct),
            simulator: self.simulator,
            suspect_score: self.suspect_score,
            tampering: self.tampering,
            tampering_confidence: self.tampering_confidence,
            tampering_ml_score: self.tampering_ml_score,
            tampering_details: self.tampering_details.map(|t| TamperingDetails {
                anomaly_score: t.anomaly_score,
                anti_detect_browser: t.anti_detect_browser,
            }),
            velocity: self.velocity.map(|v| Velocity {
                distinct_ip: v.distinct_ip.map(TCounts::convert),
                distinct_linked_id: v.distinct_linked_id.map(TCounts::convert),
                distinct_country: v.distinct_country.map(TCounts::convert),
                events: v.events.map(TCounts::convert),
                ip_events: v.ip_events.map(TCounts::convert),
                distinct_ip_by_linked_id: v.distinct_ip_by_linked_id.map(TCounts::convert),
                distinct_visitor_id_by_linked_id: v
                    .distinct_visitor_id_by_linked_id
                    .map(TCounts::convert),
            }),
            virtual_machine: self.virtual_machine,
            virtual_machine_ml_score: self.virtual_machine_ml_score,
            vpn: self.vpn,
            vpn_confidence: self.vpn_confidence,
            vpn_ml_score: self.vpn_ml_score,
            vpn_origin_timezone: self.vpn_origin_timezone,
            vpn_origin_country: self.vpn_origin_country,
            vpn_methods: self.vpn_methods.map(|m| VpnMethods {
                timezone_mismatch: m.timezone_mismatch,
                public_vpn: m.public_vpn,
                auxiliary_mobile: m.auxiliary_mobile,
                os_mismatch: m.os_mismatch,
                relay: m.relay,
                ml_prediction: m.ml_prediction,
            }),
            high_activity_device: self.high_activity_device,
            rare_device: self.rare_device,
            rare_device_percentile_bucket: self.rare_device_percentile_bucket,
            raw_device_attributes: self.raw_device_attributes.map(to_struct),
            triggered_by: list(self.triggered_by, |t| TriggeringRule {
                id: t.id,
                name: t.name,
                description: t.description,
            }),
            labels: list(self.labels, |l| Label {
                label: l.label,
                prediction: l.prediction,
                ml_score: l.ml_score,
            }),
            ..Event::default()
        };
        if let Some(raw) = self.bot {
            set_bot(&mut e, raw);
        }
        e
    }
}

impl TSdk {
    fn convert(self) -> Sdk {
        Sdk {
            platform: self.platform,
            version: self.version,
            integrations: list(self.integrations, TIntegration::convert),
        }
    }
}

impl TIntegration {
    fn convert(self) -> Integration {
        Integration {
            name: self.name,
            version: self.version,
            subintegration: self.subintegration.map(|s| Box::new(s.convert())),
        }
    }
}

impl TIdentification {
    fn convert(self) -> Identification {
        Identification {
            visitor_id: self.visitor_id.unwrap_or_default(),
            visitor_found: self.visitor_found,
            confidence: self.confidence.map(|c| Confidence {
                score: c.score,
                version: c.version,
                comment: c.comment,
            }),
            first_seen_at: self.first_seen_at,
            last_seen_at: self.last_seen_at,
        }
    }
}

impl TIpDetails {
    fn convert(self) -> IpDetails {
        IpDetails {
            address: self.address,
            geolocation: self.geolocation.map(|g| Geolocation {
                accuracy_radius: g.accuracy_radius,
                latitude: g.latitude,
                longitude: g.longitude,
                postal_code: g.postal_code,
                timezone: g.timezone,
                city_name: g.city_name,
                country_code: g.country_code,
                country_name: g.country_name,
                continent_code: g.continent_code,
                continent_name: g.continent_name,
                subdivisions: list(g.subdivisions, |s| Subdivision {
                    iso_code: s.iso_code,
                    name: s.name,
                }),
            }),
            asn: self.asn,
            asn_name: self.asn_name,
            asn_network: self.asn_network,
            asn_type: self.asn_type,
            datacenter_result: self.datacenter_result,
            datacenter_name: self.datacenter_name,
        }
    }
}

impl TCounts {
    fn convert(self) -> VelocityCounts {
        VelocityCounts {
            five_minutes: self.five_minutes,
            one_hour: self.one_hour,
            twenty_four_hours: self.twenty_four_hours,
        }
    }
}
